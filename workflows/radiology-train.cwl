#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: radiology-train
label: "gcmlm radiology-train: nnU-Net v2 dataset -> plan and preprocess -> train one fold -> model zip"
doc: |
  Trains the CT segmentation model the radiology workflow uses: packages CT images and label maps
  as an nnU-Net v2 raw dataset (nnunet-dataset), plans and preprocesses it (nnunet-plan), trains
  and validates one fold (nnunet-train) and returns nnU-Net's model zip with the fold's
  validation summary. Cases come from `images` + `labels` or from a cohort folder with a manifest.
  `use_gpu` (default true) declares a CUDA GPU for training (docs/gpu.md); false trains on CPU.
  `tiny` uses the tiny plans variant and suits a short CPU demo together with `epochs`.

$namespaces:
  s: https://schema.org/
  cwltool: http://commonwl.org/cwltool#

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
  StepInputExpressionRequirement: {}
  MultipleInputFeatureRequirement: {}

inputs:
  use_gpu:
    type: boolean
    default: true
    doc: false runs training on CPU
  images:
    type: File[]?
    doc: training CT images
  labels:
    type: File[]?
    doc: label maps, one per image, same order
  case_ids:
    type: string[]?
    doc: "case IDs for images (default: file names)"
  cohort:
    type: Directory?
    doc: cohort folder with a manifest (instead of images/labels)
  manifest_name:
    type: string
    default: manifest.csv
  test_cases:
    type: string[]?
    doc: manifest patients held out of training
  dataset_id:
    type: int
    doc: nnU-Net dataset ID, 1-999
  dataset_name:
    type: string
    doc: "dataset name: DatasetNNN_<name>"
  classes:
    type: string[]?
    doc: label NAME=VALUE pairs (default background=0 stomach=1 tumour=2)
  configuration:
    type:
      type: enum
      symbols: [2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres]
    default: 3d_fullres
  tiny:
    type: boolean
    default: false
    doc: tiny plans variant nnUNetPlans_tiny (tests, demos)
  fold:
    type: string
    default: "0"
  trainer:
    type: string
    default: nnUNetTrainer
  epochs:
    type: int?
  iterations_per_epoch:
    type: int?
  val_iterations:
    type: int?
  device:
    type:
      type: enum
      symbols: [auto, cpu, cuda, mps]
    default: auto
  threads:
    type: int?
  num_workers:
    type: int?
  num_processes:
    type: int?

steps:
  dataset:
    run: ../tools/nnunet-dataset/nnunet-dataset.cwl
    in:
      images: images
      labels: labels
      case_ids: case_ids
      cohort: cohort
      manifest_name: manifest_name
      test_cases: test_cases
      dataset_id: dataset_id
      dataset_name: dataset_name
      classes: classes
    out: [dataset]

  plan:
    run: ../tools/nnunet-plan/nnunet-plan.cwl
    in:
      raw: dataset/dataset
      configuration:
        source: configuration
        valueFrom: $([self])
      tiny: tiny
      num_processes: num_processes
    out: [preprocessed]

  train_gpu:
    run: ../tools/nnunet-train/nnunet-train.cwl
    when: $(inputs.use_gpu)
    hints:
      cwltool:CUDARequirement:
        cudaVersionMin: "11.8"
        cudaComputeCapability: "7.0"
        cudaDeviceCountMin: 1
    in:
      use_gpu: use_gpu
      preprocessed: plan/preprocessed
      configuration: configuration
      fold: fold
      trainer: trainer
      plans:
        source: tiny
        valueFrom: "$(self ? 'nnUNetPlans_tiny' : 'nnUNetPlans')"
      epochs: epochs
      iterations_per_epoch: iterations_per_epoch
      val_iterations: val_iterations
      device: device
      threads: threads
      num_workers: num_workers
      num_processes: num_processes
    out: [model, validation_summary]

  train_cpu:
    run: ../tools/nnunet-train/nnunet-train.cwl
    when: $(!inputs.use_gpu)
    in:
      use_gpu: use_gpu
      preprocessed: plan/preprocessed
      configuration: configuration
      fold: fold
      trainer: trainer
      plans:
        source: tiny
        valueFrom: "$(self ? 'nnUNetPlans_tiny' : 'nnUNetPlans')"
      epochs: epochs
      iterations_per_epoch: iterations_per_epoch
      val_iterations: val_iterations
      device: device
      threads: threads
      num_workers: num_workers
      num_processes: num_processes
    out: [model, validation_summary]

outputs:
  model:
    type: File
    outputSource: [train_gpu/model, train_cpu/model]
    pickValue: the_only_non_null
    doc: nnU-Net model zip (nnUNetv2_export_model_to_zip layout).
  validation_summary:
    type: File
    outputSource: [train_gpu/validation_summary, train_cpu/validation_summary]
    pickValue: the_only_non_null
    doc: nnU-Net's validation summary.json of the trained fold.
