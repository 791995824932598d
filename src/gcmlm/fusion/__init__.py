"""Fusion branch: merge patient tables, train and validate MLM risk models, evaluate, predict.

Shared logic lives in small modules: ``metrics`` (AUC/DeLong, threshold metrics, calibration,
net benefit), ``models`` (sklearn pipelines and the saved ``RiskModel``), ``selection``
(in-fold feature selection), ``harmonize`` (ComBat), ``validation`` (nested CV), ``plots``,
``report``, ``inputs`` (reading tables, labels and skops models with a type allow-list) and
``synthetic`` (planted-signal tables for tests and fixtures).
"""
