"""Helpers the fusion stages share (not stages): ``metrics`` (AUC/DeLong, threshold metrics,
calibration, net benefit), ``models`` (sklearn pipelines and the saved ``RiskModel``), ``selection``
(in-fold feature selection), ``harmonize`` (ComBat), ``validation`` (nested CV), ``plots``,
``report``, ``inputs`` (tables, labels, model files) and ``synthetic`` (planted-signal tables for
tests and fixtures)."""
