#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: radiomics-extract
label: "gcmlm radiomics-extract: PyRadiomics features of one CT and label map, as a patient-table row"
doc: |
  Runs PyRadiomics' RadiomicsFeatureExtractor with an ordinary PyRadiomics parameter file (or a
  shipped one by name: `ct_default` = Original + LoG + Wavelet, bin width 25 HU, 1 mm isotropic
  B-spline resampling, after PyRadiomics' CT example; `ibsi` = the IBSI digital phantom setting).
  Writes a patient table with one row: `patient_id` and `rad_` + PyRadiomics' feature names
  (e.g. `rad_original_firstorder_Mean`); diagnostics (versions, settings, hashes) go to a separate
  JSON. An empty mask, a label absent from the mask (the error lists those present) or a mask off
  the image grid (unless `resample_mask_to_image`) is an error naming the patient.
  Second form, the merge after a scattered run: `tables` (per-patient tables) instead of
  image/mask/patient_id joins them into one patient table, checking that all have the same
  `rad_` columns and that no patient appears twice.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/radiomics-extract:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      SimpleITK:
        version: ["2.5.7"]
        specs: ["https://pypi.org/project/SimpleITK/"]
      pyradiomics:
        version: ["3.0.1"]
        specs: ["https://pypi.org/project/pyradiomics/"]
      nnunetv2:
        version: ["2.8.1"]
        specs: ["https://pypi.org/project/nnunetv2/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 4096

baseCommand: [gcmlm, radiomics-extract]

inputs:
  image:
    type:
      - "null"
      - File
      - Directory
    inputBinding:
      prefix: --image
    doc: CT image (NIfTI edam:format_3549, NRRD, MHA) or a DICOM series folder (with mask and patient_id).
  mask:
    type: File?
    inputBinding:
      prefix: --mask
    doc: Label map on the image grid (NIfTI, NRRD, MHA).
  patient_id:
    type: string?
    inputBinding:
      prefix: --patient-id
    doc: The row's patient_id.
  cohort:
    type: Directory?
    doc: |
      Batch form, instead of image/mask/patient_id: a folder holding a cohort manifest (kind=ct rows
      with a label path) or a CSV with columns patient_id,image,mask, paths relative to it.
  manifest_name:
    type: string
    default: manifest.csv
    doc: The manifest's file name inside `cohort`.
  tables:
    type: File[]?
    inputBinding:
      prefix: --concat
    doc: Merge form, instead of image/mask/patient_id; per-patient patient tables (CSV) to join.
  params:
    type: File?
    doc: PyRadiomics parameter file (YAML). Overrides params_name.
  params_name:
    type: string
    default: ct_default
    doc: Name of a shipped parameter file (ct_default, ibsi), used when params is not given.
  label:
    type: int?
    inputBinding:
      prefix: --label
    doc: Label value to extract (default the parameter file's `label`, else 1).
  resample_mask_to_image:
    type: boolean?
    inputBinding:
      prefix: --resample-mask-to-image
    doc: Resample a mask that is off the image grid onto it (nearest neighbour) instead of failing.
  out_name:
    type: string
    default: radiomics.csv
    inputBinding:
      prefix: --out
    doc: File name of the patient table.
  diagnostics_name:
    type: string
    default: radiomics_diagnostics.json
    doc: File name of the diagnostics JSON (extraction form).

arguments:
  - valueFrom: '$(inputs.cohort ? ["--manifest", inputs.cohort.path + "/" + inputs.manifest_name] : [])'
  # extraction form only: the parameter file and the diagnostics
  - valueFrom: '$(inputs.tables ? [] : ["--params", inputs.params ? inputs.params.path : inputs.params_name])'
  - valueFrom: '$(inputs.tables ? [] : ["--diagnostics", inputs.diagnostics_name])'

outputs:
  features:
    type: File
    format: edam:format_3752  # CSV
    outputBinding:
      glob: $(inputs.out_name)
  diagnostics:
    type: File?
    format: edam:format_3464  # JSON
    outputBinding:
      glob: '$(inputs.tables ? [] : inputs.diagnostics_name)'
