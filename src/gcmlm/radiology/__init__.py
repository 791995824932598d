"""Radiology branch: ct-preprocess, nnunet-dataset/-plan/-train/-predict, radiomics-extract (one
module per stage, named after it); what they share lives in ``gcmlm.radiology.core``."""
