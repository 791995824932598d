#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: demo-cohort
label: "gcmlm demo-cohort: a small deterministic synthetic gastric-cancer cohort"
doc: |
  Writes a synthetic cohort folder: CT volumes (NIfTI, int16 HU, 0.8 x 0.8 x 2.5 mm) with
  stomach-wall/tumour label maps, H&E-like whole-slide images (pyramidal JPEG-tiled TIFF,
  0.5 um/px, readable by OpenSlide), a cohort manifest (`manifest.csv`), a clinical table with the
  MLM outcome (`clinical.csv`) and the planted latent risks (`truth.json`). The outcome depends on
  risks planted in the CT tumour and in the slides, so a fused model can beat either modality.
  The same seed gives the same files. All data are synthetic.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/demo-cohort:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      SimpleITK:
        version: ["2.5.7"]
        specs: ["https://pypi.org/project/SimpleITK/"]
      tifffile:
        version: ["2026.3.3"]
        specs: ["https://pypi.org/project/tifffile/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 1024

baseCommand: [gcmlm, demo-cohort]

inputs:
  patients:
    type: int?
    inputBinding:
      prefix: --patients
    doc: Number of patients (default 40); patient k is the same in every cohort of at least k patients.
  seed:
    type: int?
    inputBinding:
      prefix: --seed
    doc: Random seed (non-negative, default 0); the same seed gives the same files.
  slide_size:
    type: int[]?
    inputBinding:
      prefix: --slide-size
    doc: Largest slide width and height in level-0 pixels at 0.5 um/px (default 4096 3072).
  out_name:
    type: string
    default: demo-cohort
    inputBinding:
      prefix: --out
    doc: Name of the cohort folder.

outputs:
  cohort:
    type: Directory
    outputBinding:
      glob: $(inputs.out_name)
    doc: "The cohort folder: ct/, labels/, slides/, manifest.csv, clinical.csv, truth.json."
  manifest:
    type: File
    format: edam:format_3752  # CSV
    outputBinding:
      glob: $(inputs.out_name)/manifest.csv
    doc: "Cohort manifest: patient_id,kind,path,label with paths relative to the cohort folder."
  clinical:
    type: File
    format: edam:format_3752  # CSV
    outputBinding:
      glob: $(inputs.out_name)/clinical.csv
    doc: "Patient table: patient_id, clin_* features and the outcome column mlm."
  truth:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: $(inputs.out_name)/truth.json
    doc: The planted latent risks per patient, the seed and the generator version.
