"""Fusion branch: fusion-merge -> fusion-train; fusion-evaluate and fusion-predict apply a saved model.

Each stage is a module named after it (``fusion_train`` is ``gcmlm fusion-train``); what the
stages share lives in ``gcmlm.fusion.core``.
"""
