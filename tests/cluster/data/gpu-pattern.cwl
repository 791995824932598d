#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: gpu-pattern
label: "Engine test: the use_gpu pattern of docs/gpu.md"
doc: |
  The same tool in two conditional steps, one with cwltool:CUDARequirement, one without, chosen
  by `use_gpu` (docs/gpu.md). Lets tests check what an engine asks of the cluster for each branch.

$namespaces:
  s: https://schema.org/
  cwltool: "http://commonwl.org/cwltool#"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
  MultipleInputFeatureRequirement: {}

inputs:
  use_gpu: {type: boolean, default: true, doc: "false runs the GPU step on CPU"}

steps:
  probe_gpu:
    run: gpu-probe.cwl
    when: $(inputs.use_gpu)
    hints:
      cwltool:CUDARequirement: {cudaVersionMin: "11.8", cudaComputeCapability: "7.0", cudaDeviceCountMin: 1}
    in: {use_gpu: use_gpu}
    out: [gpu_env]
  probe_cpu:
    run: gpu-probe.cwl
    when: $(!inputs.use_gpu)
    in: {use_gpu: use_gpu}
    out: [gpu_env]

outputs:
  gpu_env:
    type: File
    outputSource: [probe_gpu/gpu_env, probe_cpu/gpu_env]
    pickValue: the_only_non_null
