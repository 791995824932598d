#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: fusion-evaluate
label: "gcmlm fusion-evaluate: saved models on an external cohort, with a self-contained HTML report"
doc: |
  Applies frozen models (a fusion-train output folder, or one .skops file) to an external cohort:
  AUC with DeLong CI, sensitivity/specificity/PPV/NPV at the training threshold (Wilson CIs),
  Brier and calibration intercept/slope (bootstrap CIs), DeLong comparisons, ROC, calibration and
  decision curves (PNG + SVG) and report.html with everything embedded.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/fusion-evaluate:0.1.0
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
    ramMin: 2048

baseCommand: [gcmlm, fusion-evaluate]

inputs:
  model:
    type:
      - Directory
      - File
    inputBinding: {prefix: --model}
    doc: fusion-train output folder or one models/<name>.skops file.
  names:
    type: string[]?
    inputBinding: {prefix: --names}
    doc: Only these models from a folder.
  table:
    type: File
    inputBinding: {prefix: --table}
    doc: External cohort patient table (CSV, edam:format_3752).
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
  bootstrap:
    type: int?
    inputBinding: {prefix: --bootstrap}
  seed:
    type: int?
    inputBinding: {prefix: --seed}

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)/evaluation

outputs:
  evaluation_dir:
    type: Directory
    outputBinding:
      glob: evaluation
  metrics:
    type: File
    format: edam:format_3464
    outputBinding:
      glob: evaluation/metrics.json
  predictions:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: evaluation/predictions.csv
  report:
    type: File
    format: edam:format_2331  # HTML
    outputBinding:
      glob: evaluation/report.html
  plots:
    type: File[]
    outputBinding:
      glob: ["evaluation/*.png", "evaluation/*.svg"]
