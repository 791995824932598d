#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: fusion
label: "gcmlm fusion: merge patient tables, nested-CV training, optional external evaluation and prediction"
doc: |
  fusion-merge joins the radiology, pathology and clinical patient tables (those given) on
  patient_id; fusion-train runs nested cross-validation of per-modality, fused and stacked models
  and refits them on all patients (cv_report: nested-CV report.html); if `external_table` is given, fusion-evaluate validates the
  saved models on it (report.html); if `predict_table` is given, fusion-predict scores it. If
  `time_column` (with `event_column`) is given, a second fusion-train runs the time-to-event
  analysis (penalised Cox models, C-index, AUC(t), Kaplan-Meier) beside the binary one (survival_*).
  If `mil_features` (patch-embed's feature files, with `slide_map`) are given, the binary
  fusion-train also fits an attention-MIL model inside every outer fold, on that fold's training
  patients only, and validates `path_mil` (and uses the MIL risk in fused and stacked).

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
  MultipleInputFeatureRequirement: {}
  StepInputExpressionRequirement: {}

inputs:
  rad_table:
    type: File
    doc: radiomics patient table (rad_ columns)
  path_table:
    type: File
    doc: pathology patient table (path_ columns)
  clinical_table:
    type: File
    doc: clinical patient table (clin_ columns and usually the outcome)
  label:
    type: string
    doc: binary outcome column
  time_column:
    type: string?
    doc: follow-up time column (time to event or censoring); runs the time-to-event analysis too
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
  policy:
    type:
      type: enum
      symbols: [fail, drop, impute]
    default: fail
    doc: fusion-merge policy for problem patients
  models:
    type: string[]?
    doc: subset of rad, path, clin, path_mil, fused, stacked
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
  combat_column:
    type: string?
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
  n_jobs:
    type: int?
  external_table:
    type: File?
    doc: external cohort (same columns and outcome) for fusion-evaluate
  predict_table:
    type: File?
    doc: new patients to score with the default model
  bootstrap:
    type: int?
  mil_features:
    type: File[]?
    doc: CLAM patch feature files (h5, slide ID = file stem); adds path_mil, attention MIL trained per outer fold
  slide_map:
    type: File?
    doc: with mil_features, cohort manifest or patient_id,slide_id CSV mapping slides to patients

steps:
  merge:
    run: ../tools/fusion-merge/fusion-merge.cwl
    in:
      tables:
        source: [rad_table, path_table, clinical_table]
        linkMerge: merge_flattened
      policy: policy
    out: [merged, report]
  train:
    run: ../tools/fusion-train/fusion-train.cwl
    in:
      table: merge/merged
      label: label
      models: models
      classifier: classifier
      selection: selection
      k_features: k_features
      combat_column: combat_column
      outer_folds: outer_folds
      outer_repeats: outer_repeats
      inner_folds: inner_folds
      tuning: tuning
      seed: seed
      n_jobs: n_jobs
      mil_features: mil_features
      slide_map: slide_map
    out: [model_dir, metrics, oof_predictions, selected_features, model_card, report, plots]
  train_survival:
    run: ../tools/fusion-train/fusion-train.cwl
    when: $(inputs.time != null)
    in:
      table: merge/merged
      time: time_column
      event: event_column
      time_unit: time_unit
      horizons: horizons
      models: models
      selection: selection
      k_features: k_features
      combat_column: combat_column
      outer_folds: outer_folds
      outer_repeats: outer_repeats
      inner_folds: inner_folds
      tuning: tuning
      seed: seed
      n_jobs: n_jobs
    out: [model_dir]
  survival_folder:
    doc: |
      Names the time-to-event fusion-train folder survival_model: both fusion-train runs write
      fusion_model, and two workflow outputs of one name would collide under --outdir.
    in:
      model_dir: train_survival/model_dir
    out: [renamed]
    run:
      class: ExpressionTool
      inputs:
        model_dir: Directory?
      outputs:
        renamed: Directory?
      expression: |
        ${
          if (inputs.model_dir === null) { return {renamed: null}; }
          var folder = inputs.model_dir;
          folder.basename = "survival_model";
          return {renamed: folder};
        }
  evaluate:
    run: ../tools/fusion-evaluate/fusion-evaluate.cwl
    when: $(inputs.table !== null)
    in:
      model: train/model_dir
      table:
        source: external_table
        valueFrom: $(self)
      label: label
      bootstrap: bootstrap
      seed: seed
    out: [evaluation_dir, metrics, report, plots]
  predict:
    run: ../tools/fusion-predict/fusion-predict.cwl
    when: $(inputs.table !== null)
    in:
      model: train/model_dir
      table:
        source: predict_table
        valueFrom: $(self)  # null skips the step; valueFrom keeps the checker from flagging File? -> File
    out: [predictions]

outputs:
  merged_table:
    type: File
    outputSource: merge/merged
  join_report:
    type: File
    outputSource: merge/report
  model_dir:
    type: Directory
    outputSource: train/model_dir
  cv_metrics:
    type: File
    outputSource: train/metrics
  oof_predictions:
    type: File
    outputSource: train/oof_predictions
  selected_features:
    type: File
    outputSource: train/selected_features
  cv_plots:
    type: File[]
    outputSource: train/plots
  cv_report:
    type: File
    outputSource: train/report
  external_metrics:
    type: File?
    outputSource: evaluate/metrics
  report:
    type: File?
    outputSource: evaluate/report
  external_plots:
    type: File[]?
    outputSource: evaluate/plots
  predictions:
    type: File?
    outputSource: predict/predictions
  survival_model_dir:
    type: Directory?
    outputSource: survival_folder/renamed
    doc: |
      time-to-event fusion-train folder (absent without time_column): Cox models, metrics.json
      (C-index, AUC(t), IBS, calibration), oof_predictions.csv, report.html with Kaplan-Meier curves
