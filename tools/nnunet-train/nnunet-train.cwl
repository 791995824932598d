#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: nnunet-train
label: "gcmlm nnunet-train: train one nnU-Net v2 fold, validate it and export the model zip"
doc: |
  nnUNetv2_train DATASET CONFIGURATION FOLD -tr TRAINER -p PLANS, then nnU-Net's validation and
  nnUNetv2_export_model_to_zip. Needs only the preprocessed dataset folder (nnU-Net copies the
  ground truth there for validation; nnUNet_raw is not read). Short runs (`epochs`,
  `iterations_per_epoch`, `val_iterations`) train with gcmlm's nnUNetTrainer_gcmlmShort, which
  gcmlm installs for nnU-Net to find, so the zip predicts anywhere gcmlm is installed.
  No GPU is declared here: workflows add cwltool:CUDARequirement (see docs/gpu.md); `device`
  auto uses a GPU when torch sees one.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/nnunet-train:0.1.0
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
    ramMin: 8192

baseCommand: [gcmlm, nnunet-train]

inputs:
  preprocessed:
    type: Directory
    inputBinding:
      prefix: --preprocessed
    doc: Preprocessed dataset folder DatasetNNN_Name (from nnunet-plan).
  configuration:
    type:
      - "null"
      - type: enum
        symbols: [2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres]
    inputBinding:
      prefix: --configuration
    doc: nnU-Net configuration (default 3d_fullres).
  fold:
    type: string?
    inputBinding:
      prefix: --fold
    doc: Fold 0-4 of nnU-Net's 5-fold split, or all (default 0).
  trainer:
    type: string?
    inputBinding:
      prefix: --trainer
    doc: nnU-Net trainer class (default nnUNetTrainer; nnU-Net v2 names, nnUNetTrainerV2 is v1's).
  plans:
    type: string?
    inputBinding:
      prefix: --plans
    doc: Plans identifier (default nnUNetPlans; nnUNetPlans_tiny, ...).
  epochs:
    type: int?
    inputBinding:
      prefix: --epochs
  iterations_per_epoch:
    type: int?
    inputBinding:
      prefix: --iterations-per-epoch
  val_iterations:
    type: int?
    inputBinding:
      prefix: --val-iterations
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
  num_workers:
    type: int?
    inputBinding:
      prefix: --num-workers
    doc: Data augmentation processes (nnUNet_n_proc_DA).
  num_processes:
    type: int?
    inputBinding:
      prefix: --num-processes
    doc: Validation export processes (nnUNet_def_n_proc).
  out_name:
    type: string
    default: nnunet_model.zip
    inputBinding:
      prefix: --out
    doc: File name of the model zip.

arguments:
  - prefix: --validation-summary
    valueFrom: validation_summary.json

outputs:
  model:
    type: File
    format: edam:format_3987  # ZIP
    outputBinding:
      glob: $(inputs.out_name)
    doc: nnU-Net model zip (nnUNetv2_export_model_to_zip layout; nnUNetv2_install_pretrained_model_from_zip reads it).
  validation_summary:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: validation_summary.json
    doc: nnU-Net's validation summary.json of the fold (Dice, IoU per label).
