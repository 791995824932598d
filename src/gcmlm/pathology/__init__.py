"""Pathology branch: wsi-tile -> patch-embed -> slide-pool."""
