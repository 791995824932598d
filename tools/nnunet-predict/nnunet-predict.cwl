#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: nnunet-predict
label: "gcmlm nnunet-predict: segment CT images with an nnU-Net v2 model zip"
doc: |
  Loads the model once and predicts every image with nnU-Net's predictor: masks are those of
  nnUNetv2_predict with the same folds, step size, TTA and checkpoint. Writes masks/<case>.nii.gz
  on each input CT's grid (case = file name without extension and _0000) and, with `qa`, a QA
  PNG per case (CT slices with the mask outlines). No GPU is declared here: workflows add
  cwltool:CUDARequirement (see docs/gpu.md); `device` auto uses a GPU when torch sees one.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/nnunet-predict:0.1.0
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
    coresMin: 2
    ramMin: 4096

baseCommand: [gcmlm, nnunet-predict]

inputs:
  model:
    type:
      - File
      - Directory
    inputBinding:
      prefix: --model
    doc: nnU-Net model zip (ZIP, from nnunet-train or nnUNetv2_export_model_to_zip) or a trainer results folder.
  images:
    type: File[]
    inputBinding:
      prefix: --images
    doc: CT images (NIfTI; NRRD and MHA are converted).
  configuration:
    type: string?
    inputBinding:
      prefix: --configuration
    doc: Configuration to use when the zip holds several.
  folds:
    type: string[]?
    inputBinding:
      prefix: --folds
    doc: Folds to ensemble (default every fold in the zip).
  checkpoint:
    type: string?
    inputBinding:
      prefix: --checkpoint
    doc: Checkpoint name (default checkpoint_final.pth).
  step_size:
    type: float?
    inputBinding:
      prefix: --step-size
    doc: Sliding-window step as a fraction of the patch (default 0.5).
  disable_tta:
    type: boolean?
    inputBinding:
      prefix: --disable-tta
  largest_component:
    type: boolean?
    inputBinding:
      prefix: --largest-component
    doc: Keep only the largest connected component of each label.
  qa:
    type: boolean
    default: true
    inputBinding:
      valueFrom: "$(self ? ['--qa-dir', 'qa'] : null)"
    doc: Write a QA overlay PNG per case.
  device:
    type:
      - "null"
      - type: enum
        symbols: [auto, cpu, cuda, mps]
    inputBinding:
      prefix: --device
    doc: auto (default; CUDA if torch sees a GPU, else CPU), cpu, cuda or mps.
  threads:
    type: int?
    inputBinding:
      prefix: --threads
    doc: torch CPU threads (default as nnU-Net; 1 is fastest on an oversubscribed machine).
  num_processes_preprocessing:
    type: int?
    inputBinding:
      prefix: --num-processes-preprocessing
    doc: Preprocessing processes, as nnUNetv2_predict -npp (default 3).
  num_processes_export:
    type: int?
    inputBinding:
      prefix: --num-processes-export
    doc: Export processes, as nnUNetv2_predict -nps (default 3).

arguments:
  - prefix: --out
    valueFrom: masks

outputs:
  masks:
    type: File[]
    format: edam:format_3549  # NIfTI-1
    outputBinding:
      glob: masks/*.nii.gz
    doc: One label map per input image, <case>.nii.gz, on the image's grid.
  qa_images:
    type: File[]
    format: edam:format_3603  # PNG
    outputBinding:
      glob: qa/*.png
    doc: QA overlays, <case>.png (empty when qa is false).
