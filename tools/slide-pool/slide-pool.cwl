#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: slide-pool
label: "gcmlm slide-pool: mean-pool patch features per slide and per patient"
doc: |
  Reads CLAM-layout feature files (`features` (N, D) float32 and `coords` (N, 2)), takes the mean
  patch feature per slide, and averages slides into one row per patient weighted by patch count.
  Writes a patient table: `patient_id`, `path_n_slides`, `path_n_patches`, `path_0000`...
  Slides with zero patches are reported and left out; a patient with no usable slide is an error.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/slide-pool:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      openslide-python:
        version: ["1.4.7"]
        specs: ["https://pypi.org/project/openslide-python/"]
      openslide-bin:
        version: ["4.0.1.2"]
        specs: ["https://pypi.org/project/openslide-bin/"]
      large-image:
        version: ["1.35.6"]
        specs: ["https://pypi.org/project/large-image/"]
      torch:
        version: ["2.14.1"]
        specs: ["https://pypi.org/project/torch/"]
      timm:
        version: ["1.0.22"]
        specs: ["https://pypi.org/project/timm/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 2048

baseCommand: [gcmlm, slide-pool]

inputs:
  features:
    type: File[]
    inputBinding:
      prefix: --features
    doc: CLAM feature files (HDF5, edam:format_3590), one per slide; the slide ID is the file stem.
  slide_map:
    type: File?
    inputBinding:
      prefix: --slide-map
    doc: Cohort manifest or a `patient_id,slide_id` CSV. Without it, each slide is its own patient.
  out_name:
    type: string
    default: pathology_features.csv
    inputBinding:
      prefix: --out
    doc: File name of the patient table.

arguments:
  - prefix: --report
    valueFrom: slide_pool_report.json
  - prefix: --slide-table
    valueFrom: slide_features.csv

outputs:
  patient_table:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: $(inputs.out_name)
  slide_table:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: slide_features.csv
  report:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: slide_pool_report.json
