#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: fusion-predict
label: "gcmlm fusion-predict: risk scores and risk groups for new patients"
doc: |
  Scores new patients with a saved model and assigns risk groups from the training threshold,
  the training score tertiles, or explicit cut-offs. A table lacking columns the model needs is an
  error listing them.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/fusion-predict:0.1.0
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
    ramMin: 1024

baseCommand: [gcmlm, fusion-predict]

inputs:
  model:
    type:
      - Directory
      - File
    inputBinding: {prefix: --model}
    doc: fusion-train output folder or one models/<name>.skops file.
  name:
    type: string?
    inputBinding: {prefix: --name}
    doc: Model to use from a folder (default the folder's default model).
  table:
    type: File
    inputBinding: {prefix: --table}
    doc: Patient table of the new patients (CSV, edam:format_3752).
  groups:
    type:
      - "null"
      - type: enum
        symbols: [threshold, tertiles]
    inputBinding: {prefix: --groups}
  cutoffs:
    type: float[]?
    inputBinding: {prefix: --cutoffs}
  horizons:
    type: float[]?
    inputBinding: {prefix: --horizons}
    doc: Time-to-event models only, survival probability at these times (model's unit; default its horizons).
  out_name:
    type: string
    default: predictions.csv
    inputBinding: {prefix: --out}

outputs:
  predictions:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: $(inputs.out_name)
