"""The stage registry: one entry per `gcmlm <stage>` subcommand, CWL tool and container image.

Each stage module defines ``add_arguments(parser)`` and ``run(args)``. Modules are imported only
when their stage runs, so ``gcmlm --help`` stays fast and each image needs only its own extras.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str  # the subcommand, the CWL file stem and the image name suffix
    module: str  # gcmlm.<branch>.<module>
    branch: str  # radiology | pathology | fusion | demo; also the pip extra the image installs
    summary: str  # the one line `gcmlm --help` shows


STAGES = [
    Stage("ct-preprocess", "gcmlm.radiology.ct_preprocess", "radiology",
          "Read a CT (DICOM series, NIfTI, NRRD, MHA), resample to a fixed spacing, clip and normalise."),
    Stage("nnunet-dataset", "gcmlm.radiology.nnunet_dataset", "radiology",
          "Package CT images and labels as an nnU-Net v2 raw dataset (DatasetNNN_Name)."),
    Stage("nnunet-plan", "gcmlm.radiology.nnunet_plan", "radiology",
          "Plan and preprocess an nnU-Net v2 dataset, with integrity checks."),
    Stage("nnunet-train", "gcmlm.radiology.nnunet_train", "radiology",
          "Train one nnU-Net v2 fold, validate it and export the model zip."),
    Stage("nnunet-predict", "gcmlm.radiology.nnunet_predict", "radiology",
          "Segment CT images with an nnU-Net v2 model zip or results folder."),
    Stage("radiomics-extract", "gcmlm.radiology.radiomics_extract", "radiology",
          "PyRadiomics features from an image and mask: one rad_ row per patient."),
    Stage("wsi-tile", "gcmlm.pathology.wsi_tile", "pathology",
          "Segment tissue in a whole-slide image and write CLAM-layout patch coordinates."),
    Stage("patch-embed", "gcmlm.pathology.patch_embed", "pathology",
          "Embed the patches of a slide with a foundation model (UNI, ResNet-50, timm)."),
    Stage("slide-pool", "gcmlm.pathology.slide_pool", "pathology",
          "Mean-pool patch features per slide and per patient: one path_ row per patient."),
    Stage("mil-train", "gcmlm.pathology.mil_train", "pathology",
          "Train a gated-attention MIL model on patient bags of patch features (weights-only model folder)."),
    Stage("mil-predict", "gcmlm.pathology.mil_predict", "pathology",
          "MIL risk per patient and slide from a mil-train model, with per-patch attention h5 files."),
    Stage("mil-heatmap", "gcmlm.pathology.mil_heatmap", "pathology",
          "A slide's MIL attention as a PNG overlay and QuPath GeoJSON regions, from stored attention only."),
    Stage("fusion-merge", "gcmlm.fusion.fusion_merge", "fusion",
          "Join radiology, pathology and clinical patient tables on patient_id, with a join report."),
    Stage("fusion-train", "gcmlm.fusion.fusion_train", "fusion",
          "Nested cross-validation of per-modality, fused and stacked MLM risk models."),
    Stage("fusion-evaluate", "gcmlm.fusion.fusion_evaluate", "fusion",
          "Evaluate a saved model on an external cohort: metrics with CIs, curves, HTML report."),
    Stage("fusion-predict", "gcmlm.fusion.fusion_predict", "fusion",
          "Risk scores and risk groups for new patients from a saved model."),
    Stage("run-report", "gcmlm.report.run_report", "report",
          "One HTML page for a whole run: cohort QA, per-patient table, image galleries, outliers."),
    Stage("demo-cohort", "gcmlm.demo.demo_cohort", "demo",
          "Write a small deterministic synthetic cohort: CTs, labels, WSIs, clinical data, outcome."),
]

BY_NAME = {stage.name: stage for stage in STAGES}
