"""Generators behind the demo-cohort stage: ``ct`` (CT and labels), ``wsi`` (H&E-like slides) and
``patients`` (latent risks, outcome, clinical table)."""
