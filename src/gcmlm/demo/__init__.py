"""Synthetic demo cohort: CT volumes with stomach/tumour labels, H&E-like WSIs, clinical data, outcome.

Everything here is synthetic. The outcome depends on latent per-patient risks that are planted in
the CT tumour (``core.ct``), in the slides (``core.wsi``) and weakly in the clinical table
(``core.patients``), so that a fused model can beat either imaging modality alone. ``demo_cohort``
is the stage.
"""
