"""Radiology stages: CT preprocessing, nnU-Net v2 segmentation, PyRadiomics features."""
