"""Pathology branch: wsi-tile -> patch-embed -> slide-pool (modules ``wsi_tile``, ``patch_embed``,
``slide_pool``); what they share lives in ``gcmlm.pathology.core``."""
