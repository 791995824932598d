#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: gpu-probe
label: "Engine test: report the GPU a job was given"
doc: |
  Writes the GPU binding the job sees (CUDA_VISIBLE_DEVICES, and SLURM_JOB_ID / SLURM_JOB_GPUS when
  it runs under Slurm) to gpu_env.txt. Stands in for a GPU stage in tests/cluster/test_gpu_slurm.py.

$namespaces:
  s: https://schema.org/
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

hints:
  ResourceRequirement:
    coresMin: 1
    ramMin: 256

baseCommand: [sh, -c]
arguments:
  - env | grep -E '^(CUDA_VISIBLE_DEVICES|SLURM_JOB_ID|SLURM_JOB_GPUS)=' | sort; true

inputs: []
stdout: gpu_env.txt
outputs:
  gpu_env:
    type: File
    outputBinding:
      glob: gpu_env.txt
