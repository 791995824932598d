#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: fusion-merge
label: "gcmlm fusion-merge: join patient tables on patient_id with a join report"
doc: |
  Joins radiology, pathology and clinical patient tables (any number; modalities are recognised by
  column prefix rad_, path_, clin_) on patient_id. Duplicated IDs, patients missing from a table and
  non-numeric feature values are listed in the join report; `policy` fails (default), drops those
  patients, or keeps them with empty cells for in-fold imputation. Other columns (e.g. the outcome)
  pass through.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/fusion-merge:0.1.0
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

baseCommand: [gcmlm, fusion-merge]

inputs:
  tables:
    type: File[]
    inputBinding:
      prefix: --tables
    doc: Patient tables (CSV, edam:format_3752), first column patient_id.
  policy:
    type:
      - "null"
      - type: enum
        symbols: [fail, drop, impute]
    inputBinding:
      prefix: --policy
    doc: What to do with problem patients (default fail).
  out_name:
    type: string
    default: merged.csv
    inputBinding:
      prefix: --out
    doc: File name of the merged table.

arguments:
  - prefix: --report
    valueFrom: join_report.json

outputs:
  merged:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: $(inputs.out_name)
  report:
    type: File
    format: edam:format_3464
    outputBinding:
      glob: join_report.json
