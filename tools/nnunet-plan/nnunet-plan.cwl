#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: nnunet-plan
label: "gcmlm nnunet-plan: nnU-Net v2 fingerprint, plans and preprocessing for one raw dataset"
doc: |
  nnUNetv2_plan_and_preprocess through nnU-Net's Python API: dataset integrity check, fingerprint,
  experiment plans and preprocessing of the requested configurations. The output is the
  preprocessed dataset folder (nnUNet_preprocessed/DatasetNNN_Name layout: plans JSON,
  dataset.json, dataset_fingerprint.json, gt_segmentations/, <plans>_<configuration>/).
  `tiny` writes and preprocesses the plans variant `<plans>_tiny` (32^3 patch, few features,
  batch 2, coarse spacing) for tests and demos on a CPU.

$namespaces:
  s: https://schema.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/nnunet-plan:0.1.0
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

baseCommand: [gcmlm, nnunet-plan]

inputs:
  raw:
    type: Directory
    inputBinding:
      prefix: --raw
    doc: Raw dataset folder DatasetNNN_Name (from nnunet-dataset or prepared for nnU-Net by hand).
  configuration:
    # string[], not an array of enum: cwltool cannot bind an array of enums (cwltool#821)
    type: string[]?
    inputBinding:
      prefix: --configuration
    doc: Configuration(s) to preprocess, of 2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres (default 3d_fullres).
  planner:
    type: string?
    inputBinding:
      prefix: --planner
    doc: nnU-Net experiment planner class (default ExperimentPlanner; e.g. nnUNetPlannerResEncM).
  gpu_memory_target:
    type: float?
    inputBinding:
      prefix: --gpu-memory-target
    doc: GPU memory in GB the planner targets (nnU-Net's -gpu_memory_target).
  tiny:
    type: boolean?
    inputBinding:
      prefix: --tiny
    doc: Use the tiny plans variant <plans>_tiny instead (tests and demos).
  no_verify:
    type: boolean?
    inputBinding:
      prefix: --no-verify
    doc: Skip nnU-Net's dataset integrity check (it runs by default).
  num_processes:
    type: int?
    inputBinding:
      prefix: --num-processes
    doc: Processes for fingerprinting and preprocessing (default min(8, CPUs)).

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)

outputs:
  preprocessed:
    type: Directory
    outputBinding:
      glob: Dataset*
    doc: The preprocessed dataset folder DatasetNNN_Name (nnUNet_preprocessed layout).
