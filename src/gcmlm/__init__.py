"""gcmlm: multimodal radiopathomics for metachronous liver metastasis in gastric cancer."""

__version__ = "0.1.0"
