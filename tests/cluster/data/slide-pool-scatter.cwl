#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: slide-pool-scatter
label: "Engine test: slide-pool scattered over slides, then over the cohort"
doc: |
  A small scatter workflow made from a real stage, for the engine tests (tests/cluster): one
  slide-pool job per slide (scatter), then one slide-pool job over all slides with the slide map.
  Small enough to run on every engine in seconds, with enough parallel jobs to kill a run mid-way.

$namespaces:
  s: https://schema.org/
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  ScatterFeatureRequirement: {}
  StepInputExpressionRequirement: {}
  InlineJavascriptRequirement: {}

inputs:
  features:
    type: File[]
    doc: CLAM feature files (HDF5), one per slide.
  slide_map:
    type: File
    doc: "`patient_id,slide_id` CSV for the cohort table."

steps:
  per_slide:
    run: ../../../tools/slide-pool/slide-pool.cwl
    scatter: features
    in:
      features:
        source: features
        valueFrom: $([self])
      out_name:
        valueFrom: $(inputs.features.nameroot).csv  # inputs: values before valueFrom
    out: [patient_table]
  cohort:
    run: ../../../tools/slide-pool/slide-pool.cwl
    in:
      features: features
      slide_map: slide_map
    out: [patient_table, report]

outputs:
  slide_tables:
    type: File[]
    outputSource: per_slide/patient_table
  cohort_table:
    type: File
    outputSource: cohort/patient_table
  cohort_report:
    type: File
    outputSource: cohort/report
