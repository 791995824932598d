#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: run-report
label: "gcmlm run-report: one HTML page for a whole gc-mlm run"
doc: |
  Reads a results tree in the grouped layout of workflows/gc-mlm.cwl (radiology/, pathology/,
  fusion/; any may be absent) and writes index.html: the cohort at a glance (what each branch
  produced, who was dropped at the fusion join and why), a sortable per-patient table (tumour
  volume, mask/label Dice where labels are given, patches per slide, tissue area, flags, the
  warnings of every stage's JSON summary), lazy-loaded galleries of the CT overlays and the
  tissue/patch maps, and a link to the model report. Images are linked relative to the results
  folder, so the page belongs in its root (gc-mlm.cwl puts it there).

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/run-report:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      matplotlib:
        version: ["3.11.2"]
        specs: ["https://pypi.org/project/matplotlib/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 1024

baseCommand: [gcmlm, run-report]

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)/index.html

inputs:
  results:
    type: Directory
    inputBinding:
      prefix: --results
    doc: The results tree (radiology/, pathology/, fusion/ as gc-mlm.cwl groups them).
  manifest:
    type: File?
    inputBinding:
      prefix: --manifest
    doc: Cohort manifest or patient_id,slide_id CSV; gives the expected patients, CTs and slides.
  labels:
    type: File[]?
    inputBinding:
      prefix: --labels
    doc: CT label maps named <patient_id>.nii.gz, for mask/label agreement (Dice of the tumour label).
  tumour_label:
    type: int?
    inputBinding:
      prefix: --tumour-label
    doc: Label value of the tumour (default 2).
  min_patches:
    type: int?
    inputBinding:
      prefix: --min-patches
    doc: Flag slides with fewer patches (default 16).
  min_dice:
    type: float?
    inputBinding:
      prefix: --min-dice
    doc: Flag masks whose Dice with the label is lower (default 0.5).
  title:
    type: string?
    inputBinding:
      prefix: --title
    doc: Page title.

outputs:
  index_html:
    type: File
    format: edam:format_2331  # HTML
    outputBinding:
      glob: index.html
    doc: The page; it links images as radiology/qa/..., pathology/qa/..., so place it beside those folders.
