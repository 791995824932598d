"""Helpers of run-report: reading a results tree, masks without SimpleITK, the HTML page."""
