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
  `slide_model: abmil` adds attention MIL (docs/workflows.md, "Slide model"): the pathology branch
  trains a MIL model on every patient (the model to inspect; pathology/mil/) and draws attention
  heatmaps of the `heatmap_slides` highest-risk slides (pathology/heatmaps/, shown in the run
  report), and fusion-train gets the patch features, fits MIL inside every outer fold of its nested
  cross-validation (training patients only) and reports `path_mil` (its MIL risk also enters fused
  and stacked): that nested-CV AUC is MIL's honest estimate.
  A job for a cohort manifest is written by `gcmlm jobs gc-mlm`. The outputs are grouped by branch and
  kind (radiology/, pathology/, fusion/) and run-report writes index.html beside them.

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
  use_gpu:
    type: boolean
    default: true
    doc: false runs nnU-Net and patch-embed on CPU
  # radiology
  ct_images:
    type:
      type: array
      items: [File, Directory]
    doc: One CT per patient (NIfTI, NRRD, MHA or a DICOM series folder), in the order of ct_patient_ids.
  ct_patient_ids:
    type: string[]
    doc: patient_id of each CT
  nnunet_model:
    type: File
    doc: nnU-Net v2 model zip (e.g. from radiology-train.cwl)
  spacing:
    type: float[]?
    doc: resample CTs to this spacing (x y z, mm) before segmentation
  disable_tta:
    type: boolean
    default: false
  radiomics_label:
    type: int
    default: 2
    doc: mask label for radiomics (2 = tumour)
  radiomics_params:
    type: File?
    doc: "PyRadiomics parameter YAML (default: the shipped CT default)"
  radiomics_params_name:
    type: string
    default: ct_default
  # pathology
  slides:
    type: File[]
    doc: whole-slide images; the slide ID is the file stem
  slide_map:
    type: File
    doc: cohort manifest (or patient_id,slide_id CSV) mapping slides to patients
  tiling_preset:
    type: string?
    doc: CLAM preset name (bwh_biopsy, bwh_resection, tcga)
  preset_csv:
    type: File?
    doc: a CLAM preset CSV (tiling); wins over tiling_preset
  patch_size:
    type: int?
  step_size:
    type: int?
    doc: grid step in output pixels (default the patch size)
  mag:
    type: float?
    doc: target magnification, e.g. 20
  target_mpp:
    type: float?
  patch_level:
    type: int?
  mpp:
    type: float?
    doc: level-0 microns per pixel for slides whose file states none (applies to every slide)
  mpp_csv:
    type: File?
    doc: per-slide mpp table (slide_id, mpp) for slides whose file states none
  min_tissue:
    type: float?
  encoder:
    type: string
    default: uni_v1
  encoder_checkpoint:
    type: File?
  allow_random_weights:
    type: boolean
    default: false
  embed_batch_size:
    type: int
    default: 256
  slide_model:
    type:
      type: enum
      symbols: [mean, abmil]
    default: mean
    doc: "mean: path_ features are the slides' mean patch features; abmil: also attention MIL (path_mil in fusion, heatmaps)"
  heatmap_slides:
    type: int
    default: 4
    doc: with slide_model abmil, attention heatmaps for this many slides, highest MIL slide risk first (0 - all)
  # fusion
  clinical:
    type: File
    doc: clinical patient table (clin_ columns) with the outcome column
  label:
    type: string
    default: mlm
  time_column:
    type: string?
    doc: follow-up time column of the clinical table; runs the time-to-event analysis too (fusion/survival/)
  event_column:
    type: string?
    doc: event column (1 = event, 0 = censored); with time_column
  time_unit:
    type:
      - "null"
      - type: enum
        symbols: [days, months, years]
    doc: unit of time_column (default months)
  horizons:
    type: float[]?
    doc: horizons for AUC(t), calibration and survival probabilities, in time_unit (default 1, 2, 3 years)
  merge_policy:
    type:
      type: enum
      symbols: [fail, drop, impute]
    default: fail
  models:
    type: string[]?
    doc: subset of rad, path, clin, fused, stacked (default all)
  classifier:
    type:
      - "null"
      - type: enum
        symbols: [logreg, svm, rf, gb]
  selection:
    type:
      - "null"
      - type: enum
        symbols: [none, l1, anova, mrmr]
  k_features:
    type: int[]?
  outer_folds:
    type: int?
  outer_repeats:
    type: int?
  inner_folds:
    type: int?
  tuning:
    type:
      - "null"
      - type: enum
        symbols: [full, fast, none]
  seed:
    type: int?
  external_table:
    type: File?
    doc: external cohort patient table for fusion-evaluate
  predict_table:
    type: File?
    doc: new patients to score
  # run report
  ct_labels:
    type: File[]?
    doc: reference CT label maps named <patient_id>.nii.gz; the run report shows their Dice with the masks

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
    out: [radiomics_table, masks, qa_overlays, preprocess_reports, radiomics_diagnostics]
  pathology:
    run: pathology.cwl
    in:
      slides: slides
      slide_map: slide_map
      use_gpu: use_gpu
      preset: tiling_preset
      preset_csv: preset_csv
      patch_size: patch_size
      step_size: step_size
      mag: mag
      target_mpp: target_mpp
      patch_level: patch_level
      mpp: mpp
      mpp_csv: mpp_csv
      min_tissue: min_tissue
      encoder: encoder
      encoder_checkpoint: encoder_checkpoint
      allow_random_weights: allow_random_weights
      batch_size: embed_batch_size
      slide_model: slide_model
      labels: clinical
      label: label
      mil_seed: seed
      heatmap_slides: heatmap_slides
    out: [patient_table, slide_table, pool_report, coords, masks, stitches, tiling_summaries, features_h5,
          mil_model, mil_risk, mil_slide_risk, attention, heatmaps, heatmap_regions]
  fusion:
    run: fusion.cwl
    in:
      rad_table: radiology/radiomics_table
      path_table: pathology/patient_table
      clinical_table: clinical
      label: label
      time_column: time_column
      event_column: event_column
      time_unit: time_unit
      horizons: horizons
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
      slide_model: slide_model
      mil_features:  # abmil: fusion-train fits MIL per outer fold (path_mil)
        source: pathology/features_h5
        valueFrom: '$(inputs.slide_model == "abmil" ? self : null)'
      slide_map:
        source: slide_map
        valueFrom: '$(inputs.slide_model == "abmil" ? self : null)'
    out: [merged_table, join_report, model_dir, cv_metrics, cv_report, oof_predictions, selected_features, cv_plots,
          external_metrics, report, external_plots, predictions, survival_model_dir]

  results:
    doc: |
      Groups the outputs by branch and kind (README, "Results"): radiology/{masks,qa,features},
      pathology/{coords,features,qa} (with slide_model abmil also mil/, attention/, heatmaps/), fusion/
      (model/, external/, survival/). Directory literals, so cwltool and
      Toil write the same tree under --outdir; `tree` holds the three for run-report.
    in:
      ct_masks: radiology/masks
      ct_qa: radiology/qa_overlays
      ct_reports: radiology/preprocess_reports
      radiomics_diagnostics: radiology/radiomics_diagnostics
      radiomics_table: radiology/radiomics_table
      coords: pathology/coords
      patient_table: pathology/patient_table
      slide_table: pathology/slide_table
      tissue_masks: pathology/masks
      patch_maps: pathology/stitches
      tiling_summaries: pathology/tiling_summaries
      pool_report: pathology/pool_report
      mil_model: pathology/mil_model
      mil_risk: pathology/mil_risk
      mil_slide_risk: pathology/mil_slide_risk
      attention: pathology/attention
      heatmaps: pathology/heatmaps
      heatmap_regions: pathology/heatmap_regions
      merged_table: fusion/merged_table
      join_report: fusion/join_report
      model_dir: fusion/model_dir
      external_metrics: fusion/external_metrics
      external_report: fusion/report
      external_plots: fusion/external_plots
      predictions: fusion/predictions
      survival_model_dir: fusion/survival_model_dir
    out: [radiology, pathology, fusion, tree]
    run:
      class: ExpressionTool
      inputs:
        ct_masks: File[]
        ct_qa: File[]
        ct_reports: File[]
        radiomics_diagnostics: {type: {type: array, items: ["null", File]}}
        radiomics_table: File
        coords: File[]
        patient_table: File
        slide_table: File
        tissue_masks: File[]
        patch_maps: File[]
        tiling_summaries: File[]
        pool_report: File
        mil_model: Directory?
        mil_risk: File?
        mil_slide_risk: File?
        attention: File[]?
        heatmaps: File[]?
        heatmap_regions: File[]?
        merged_table: File
        join_report: File
        model_dir: Directory
        external_metrics: File?
        external_report: File?
        external_plots: File[]?
        predictions: File?
        survival_model_dir: Directory?
      outputs:
        radiology: Directory
        pathology: Directory
        fusion: Directory
        tree: Directory
      expression: |
        ${
          function present(items) { return (items || []).filter(function (x) { return x !== null; }); }
          function dir(name, items) { return {class: "Directory", basename: name, listing: present(items)}; }
          var model = inputs.model_dir;
          model.basename = "model";
          var survival = inputs.survival_model_dir || null;  // absent without time_column
          if (survival) { survival.basename = "survival"; }
          var external = present([inputs.external_metrics, inputs.external_report]).concat(present(inputs.external_plots));
          var radiology = dir("radiology", [
            dir("masks", inputs.ct_masks),
            dir("qa", inputs.ct_qa.concat(inputs.ct_reports, present(inputs.radiomics_diagnostics))),
            dir("features", [inputs.radiomics_table])]);
          var mil = null;  // slide_model abmil only
          if (inputs.mil_model) {
            var milModel = inputs.mil_model;
            milModel.basename = "model";
            mil = dir("mil", [inputs.mil_risk, inputs.mil_slide_risk, milModel]);
          }
          var pathology = dir("pathology", [
            dir("coords", inputs.coords),
            dir("features", [inputs.patient_table, inputs.slide_table]),
            dir("qa", inputs.tissue_masks.concat(inputs.patch_maps, inputs.tiling_summaries, [inputs.pool_report])),
            mil,
            inputs.attention ? dir("attention", inputs.attention) : null,
            inputs.heatmaps ? dir("heatmaps", inputs.heatmaps.concat(present(inputs.heatmap_regions))) : null]);
          var fusion = dir("fusion", [inputs.merged_table, inputs.join_report, model,
                                      external.length ? dir("external", external) : null, inputs.predictions,
                                      survival]);
          return {radiology: radiology, pathology: pathology, fusion: fusion,
                  tree: dir("results", [radiology, pathology, fusion])};
        }

  report:
    run: ../tools/run-report/run-report.cwl
    in:
      results: results/tree
      manifest: slide_map
      labels: ct_labels
      tumour_label: radiomics_label
    out: [index_html]

# Grouped by branch and kind (README, "Results"); `cwltool --outdir results` writes results/index.html,
# results/radiology/masks/..., results/pathology/qa/..., results/fusion/model/... (Toil the same).
outputs:
  index_html:
    type: File
    outputSource: report/index_html
    doc: "the run report: cohort QA, per-patient table, galleries, outliers, link to the model report"
  radiology_outputs:
    type: Directory
    outputSource: results/radiology
    doc: masks/ (<patient_id>.nii.gz), qa/ (overlay PNGs, preprocess and radiomics JSON), features/ (rad_ table)
  pathology_outputs:
    type: Directory
    outputSource: results/pathology
    doc: >
      coords/ (<slide_id>.h5), features/ (path_ patient and slide tables), qa/ (tissue and patch maps, JSON);
      slide_model abmil: mil/ (mil_risk.csv, mil_slide_risk.csv, model/), attention/ (<slide_id>.h5),
      heatmaps/ (<slide_id>_heatmap.png, <slide_id>_attention.geojson)
  fusion_outputs:
    type: Directory
    outputSource: results/fusion
    doc: >
      merged.csv, join_report.json, model/ (fusion-train's folder, report.html), external/, predictions.csv,
      survival/ (the time-to-event fusion-train folder, with time_column)
