#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: nnunet-dataset
label: "gcmlm nnunet-dataset: CT images and label maps -> nnU-Net v2 raw dataset DatasetNNN_Name"
doc: |
  Packages CT images and label maps in nnU-Net v2's raw format: `imagesTr/<case>_0000.nii.gz`,
  `labelsTr/<case>.nii.gz`, `imagesTs/<case>_0000.nii.gz` and a v2 `dataset.json`
  (channel_names {"0": "CT"}, labels, numTraining, file_ending). Every image/label pair must
  share size, spacing, origin and direction, and every label value must be declared; errors name
  the case. Cases come from `images` + `labels` (+ `case_ids`), or from a cohort folder holding a
  cohort manifest (kind=ct rows with a label are training cases, without one test cases).

$namespaces:
  s: https://schema.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/nnunet-dataset:0.1.0
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
    ramMin: 2048

baseCommand: [gcmlm, nnunet-dataset]

inputs:
  images:
    type: File[]?
    inputBinding:
      prefix: --images
    doc: Training CT images (NIfTI, NRRD or MHA).
  labels:
    type: File[]?
    inputBinding:
      prefix: --labels
    doc: Label maps, one per image and in the same order (0 background).
  case_ids:
    type: string[]?
    inputBinding:
      prefix: --case-ids
    doc: "Case IDs for `images` (default: file names without extension and _0000)."
  test_images:
    type: File[]?
    inputBinding:
      prefix: --test-images
    doc: Unlabelled images for imagesTs.
  cohort:
    type: Directory?
    doc: A cohort folder (e.g. from demo-cohort) holding the manifest named by `manifest_name`.
  manifest_name:
    type: string
    default: manifest.csv
    doc: The cohort manifest's file name inside `cohort`.
  test_cases:
    type: string[]?
    inputBinding:
      prefix: --test-cases
    doc: Manifest patients to hold out as test cases (imagesTs, no label).
  dataset_id:
    type: int
    inputBinding:
      prefix: --dataset-id
    doc: nnU-Net dataset ID, 1-999.
  dataset_name:
    type: string
    inputBinding:
      prefix: --dataset-name
    doc: Dataset name; the folder is DatasetNNN_<name>.
  classes:
    type: string[]?
    inputBinding:
      prefix: --classes
    doc: "Label names and values NAME=VALUE (default: background=0 stomach=1 tumour=2)."

arguments:
  - valueFrom: |
      ${ return inputs.cohort ? ["--manifest", inputs.cohort.path + "/" + inputs.manifest_name] : []; }
  - prefix: --out
    valueFrom: $(runtime.outdir)

outputs:
  dataset:
    type: Directory
    outputBinding:
      glob: Dataset*
    doc: The raw dataset folder DatasetNNN_Name (nnUNet_raw layout).
