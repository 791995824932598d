#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: fusion-train
label: "gcmlm fusion-train: nested cross-validation of per-modality, fused and stacked risk models"
doc: |
  Nested cross-validation (repeated stratified outer folds, inner grid search on AUC) of one model
  per modality (column prefixes rad_, path_, clin_), early fusion of all features (fused) and late
  fusion by stacking per-modality scores (stacked). Imputation, constant-feature removal, scaling,
  optional ComBat by centre, correlation pruning, feature selection and the classifier are all
  refit inside every fold. Writes metrics.json (AUC with DeLong CI, threshold metrics, Brier,
  calibration, DeLong comparisons), out-of-fold predictions, selected features, CV plots, a
  self-contained report.html (internal validation), and the
  final models refit on all patients (skops) with a model card. Given patch features
  (mil_features), also path_mil: an attention-MIL (ABMIL) risk trained inside every outer fold on
  that fold's training patients only, next to mean-pooled path and inside fused and stacked; the
  MIL network fit on all patients is saved as models/path_mil_abmil/ (safetensors + config.json).

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/fusion-train:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      scikit-learn:
        version: ["1.9.1"]
        specs: ["https://pypi.org/project/scikit-learn/"]
      skops:
        version: ["0.16.0"]
        specs: ["https://pypi.org/project/skops/"]
      neuroCombat:
        version: ["0.2.12"]
        specs: ["https://pypi.org/project/neuroCombat/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 4096

baseCommand: [gcmlm, fusion-train]

inputs:
  table:
    type: File
    inputBinding: {prefix: --table}
    doc: Patient table (CSV, edam:format_3752), e.g. from fusion-merge.
  label:
    type: string?
    inputBinding: {prefix: --label}
    doc: Binary outcome column (0/1); or time with event.
  time:
    type: string?
    inputBinding: {prefix: --time}
    doc: Follow-up time column (time to event or censoring); with event instead of label.
  event:
    type: string?
    inputBinding: {prefix: --event}
    doc: Event column (1 = event, 0 = censored).
  time_unit:
    type:
      - "null"
      - type: enum
        symbols: [days, months, years]
    inputBinding: {prefix: --time-unit}
    doc: Unit of the time column (default months), stated in the outputs.
  horizons:
    type: float[]?
    inputBinding: {prefix: --horizons}
    doc: Horizons for AUC(t), calibration and survival probabilities, in the time unit (default 1, 2, 3 years).
  models:
    # string[], not an array of enum: cwltool cannot bind an array of enums (cwltool#821)
    type: string[]?
    inputBinding: {prefix: --models}
    doc: Subset of rad, path, clin, path_mil, fused, stacked (default all available).
  mil_features:
    type: File[]?
    inputBinding: {prefix: --mil-features}
    doc: |
      CLAM-layout patch feature files (h5_files/<slide_id>.h5, e.g. from patch-embed). Adds path_mil,
      a gated-attention MIL risk trained inside every outer fold on that fold's training patients
      only (cross-fitted for them), also an input of fused and stacked. Binary label only.
  slide_map:
    type: File?
    inputBinding: {prefix: --slide-map}
    doc: With mil_features, the cohort manifest or a patient_id,slide_id CSV (default each slide is its own patient).
  classifier:
    type:
      - "null"
      - type: enum
        symbols: [logreg, svm, rf, gb]
    inputBinding: {prefix: --classifier}
    doc: logreg (default), svm, rf or gb.
  penalty:
    type:
      - "null"
      - type: enum
        symbols: [l1, l2, elasticnet]
    inputBinding: {prefix: --penalty}
    doc: Logistic regression penalty l1, l2 (default) or elasticnet.
  class_weight:
    type:
      - "null"
      - type: enum
        symbols: [balanced, none]
    inputBinding: {prefix: --class-weight}
    doc: Class weights of the classifier, balanced (default) or none.
  selection:
    type:
      - "null"
      - type: enum
        symbols: [none, l1, anova, mrmr]
    inputBinding: {prefix: --selection}
    doc: none, l1, anova or mrmr (default none for a binary label - the lasso selects - anova for time/event).
  k_features:
    type: int[]?
    inputBinding: {prefix: --k-features}
    doc: Features kept by selection; several values are tuned in the inner CV.
  corr_threshold:
    type: float?
    inputBinding: {prefix: --corr-threshold}
  combat_column:
    type: string?
    inputBinding: {prefix: --combat-column}
    doc: Centre column for ComBat harmonisation inside the folds.
  outer_folds:
    type: int?
    inputBinding: {prefix: --outer-folds}
  outer_repeats:
    type: int?
    inputBinding: {prefix: --outer-repeats}
  inner_folds:
    type: int?
    inputBinding: {prefix: --inner-folds}
  tuning:
    type:
      - "null"
      - type: enum
        symbols: [full, fast, none]
    inputBinding: {prefix: --tuning}
    doc: full (default), fast (tiny grids) or none.
  threshold_rule:
    type:
      - "null"
      - type: enum
        symbols: [youden, sens90, sens95, spec90, spec95]
    inputBinding: {prefix: --threshold-rule}
    doc: Rule choosing the risk threshold in the training data (default youden).
  seed:
    type: int?
    inputBinding: {prefix: --seed}
  n_jobs:
    type: int?
    inputBinding: {prefix: --n-jobs}

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)/fusion_model

outputs:
  model_dir:
    type: Directory
    outputBinding:
      glob: fusion_model
  metrics:
    type: File
    format: edam:format_3464
    outputBinding:
      glob: fusion_model/metrics.json
  oof_predictions:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: fusion_model/oof_predictions.csv
  selected_features:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: fusion_model/selected_features.csv
  model_card:
    type: File
    format: edam:format_3464
    outputBinding:
      glob: fusion_model/model_card.json
  report:
    type: File
    format: edam:format_2331  # HTML
    outputBinding:
      glob: fusion_model/report.html
  plots:
    type: File[]
    outputBinding:
      glob: ["fusion_model/*.png", "fusion_model/*.svg"]
