"""Synthetic demo cohort: CT volumes with stomach/tumour labels, H&E-like WSIs, clinical data, outcome.

Everything here is synthetic. The outcome depends on latent per-patient risks that are planted in
the CT tumour (``ct``), in the slides (``wsi``) and weakly in the clinical table (``patients``),
so that a fused model can beat either imaging modality alone. ``cohort`` is the stage.
"""
