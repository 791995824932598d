#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: gc-mlm
label: "gcmlm: MLM risk from CT, H&E whole-slide images and clinical data"
doc: |
  The whole pipeline on a cohort. Radiology (per patient: ct-preprocess -> nnunet-predict ->
  radiomics-extract), pathology (per slide: wsi-tile -> patch-embed, then slide-pool per patient)
  and fusion (fusion-merge -> fusion-train with nested cross-validation, optional external
  evaluation and prediction). `use_gpu: false` runs the GPU stages on CPU (see docs/gpu.md).
  A job for a cohort manifest is written by `python -m gcmlm.jobs gc-mlm`.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/
  cwltool: http://commonwl.org/cwltool#
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  SubworkflowFeatureRequirement: {}
  InlineJavascriptRequirement: {}
  ScatterFeatureRequirement: {}
  MultipleInputFeatureRequirement: {}
  StepInputExpressionRequirement: {}

inputs:
  use_gpu: {type: boolean, default: true, doc: "false runs nnU-Net and patch-embed on CPU"}
  # radiology
  ct_images:
    type:
      type: array
      items: [File, Directory]
    doc: One CT per patient (NIfTI, NRRD, MHA or a DICOM series folder), in the order of ct_patient_ids.
  ct_patient_ids: {type: "string[]", doc: "patient_id of each CT"}
  nnunet_model: {type: File, doc: "nnU-Net v2 model zip (e.g. from radiology-train.cwl)"}
  spacing: {type: "float[]?", doc: "resample CTs to this spacing (x y z, mm) before segmentation"}
  disable_tta: {type: boolean, default: false}
  radiomics_label: {type: int, default: 2, doc: "mask label for radiomics (2 = tumour)"}
  radiomics_params: {type: "File?", doc: "PyRadiomics parameter YAML (default: the shipped CT default)"}
  radiomics_params_name: {type: string, default: ct_default}
  # pathology
  slides: {type: "File[]", doc: "whole-slide images; the slide ID is the file stem"}
  slide_map: {type: File, doc: "cohort manifest (or patient_id,slide_id CSV) mapping slides to patients"}
  tiling_preset: {type: "string?", doc: "CLAM preset name (bwh_biopsy, bwh_resection, tcga)"}
  patch_size: {type: "int?"}
  target_mpp: {type: "float?"}
  min_tissue: {type: "float?"}
  encoder: {type: string, default: uni_v1}
  encoder_checkpoint: {type: "File?"}
  allow_random_weights: {type: boolean, default: false}
  embed_batch_size: {type: int, default: 256}
  # fusion
  clinical: {type: File, doc: "clinical patient table (clin_ columns) with the outcome column"}
  label: {type: string, default: mlm}
  merge_policy:
    type:
      type: enum
      symbols: [fail, drop, impute]
    default: fail
  models: {type: "string[]?", doc: "subset of rad, path, clin, fused, stacked (default all)"}
  classifier: {type: "string?"}
  selection: {type: "string?"}
  k_features: {type: "int[]?"}
  outer_folds: {type: "int?"}
  outer_repeats: {type: "int?"}
  inner_folds: {type: "int?"}
  tuning: {type: "string?"}
  seed: {type: "int?"}
  external_table: {type: "File?", doc: "external cohort patient table for fusion-evaluate"}
  predict_table: {type: "File?", doc: "new patients to score"}

steps:
  radiology:
    run: radiology.cwl
    in:
      ct_images: ct_images
      patient_ids: ct_patient_ids
      model: nnunet_model
      spacing: spacing
      use_gpu: use_gpu
      disable_tta: disable_tta
      radiomics_label: radiomics_label
      radiomics_params: radiomics_params
      radiomics_params_name: radiomics_params_name
    out: [radiomics_table, masks, qa_overlays]
  pathology:
    run: pathology.cwl
    in:
      slides: slides
      slide_map: slide_map
      use_gpu: use_gpu
      preset: tiling_preset
      patch_size: patch_size
      target_mpp: target_mpp
      min_tissue: min_tissue
      encoder: encoder
      encoder_checkpoint: encoder_checkpoint
      allow_random_weights: allow_random_weights
      batch_size: embed_batch_size
    out: [patient_table, masks, stitches]
  fusion:
    run: fusion.cwl
    in:
      rad_table: radiology/radiomics_table
      path_table: pathology/patient_table
      clinical_table: clinical
      label: label
      policy: merge_policy
      models: models
      classifier: classifier
      selection: selection
      k_features: k_features
      outer_folds: outer_folds
      outer_repeats: outer_repeats
      inner_folds: inner_folds
      tuning: tuning
      seed: seed
      external_table: external_table
      predict_table: predict_table
    out: [merged_table, join_report, model_dir, cv_metrics, cv_report, oof_predictions, selected_features, cv_plots,
          external_metrics, report, predictions]

outputs:
  radiomics_table: {type: File, outputSource: radiology/radiomics_table}
  pathology_table: {type: File, outputSource: pathology/patient_table}
  merged_table: {type: File, outputSource: fusion/merged_table}
  join_report: {type: File, outputSource: fusion/join_report}
  model_dir: {type: Directory, outputSource: fusion/model_dir}
  cv_metrics: {type: File, outputSource: fusion/cv_metrics}
  cv_report: {type: File, outputSource: fusion/cv_report, doc: "nested-CV report (HTML, images embedded)"}
  oof_predictions: {type: File, outputSource: fusion/oof_predictions}
  selected_features: {type: File, outputSource: fusion/selected_features}
  cv_plots: {type: "File[]", outputSource: fusion/cv_plots}
  external_metrics: {type: "File?", outputSource: fusion/external_metrics}
  report: {type: "File?", outputSource: fusion/report}
  predictions: {type: "File?", outputSource: fusion/predictions}
  ct_masks: {type: "File[]", outputSource: radiology/masks}
  ct_qa_overlays: {type: "File[]", outputSource: radiology/qa_overlays}
  tissue_masks: {type: "File[]", outputSource: pathology/masks}
  patch_maps: {type: "File[]", outputSource: pathology/stitches}
