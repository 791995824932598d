"""Helpers the pathology stages share (not stages): slide reading (``slide``, ``tiff_tiles``), tissue
segmentation (``tissue``), the patch grid (``grid``), tiling presets (``presets``), CLAM's h5 layout
(``clam_h5``), encoders (``encoders``) and the patch reader (``patch_loader``)."""
