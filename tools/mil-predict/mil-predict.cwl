#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: mil-predict
label: "gcmlm mil-predict: MIL risk per patient and slide, with per-patch attention"
doc: |
  Applies a mil-train model folder (weights read through safetensors only) to CLAM-layout patch
  features: `mil_risk.csv` (`patient_id, mil_risk, mil_logit, n_slides, n_patches, n_empty_slides`; all of a
  patient's patches in one bag), `mil_slide_risk.csv` (each slide alone as a bag) and
  `attention/<slide_id>.h5` (CLAM layout: `coords` with the feature file's attrs, and `attention`
  (N,), each patch's softmax weight within its patient's bag). Features whose dimension or encoder
  differs from the model's are refused.

  This tool declares no GPU: a workflow runs it in a step with `cwltool:CUDARequirement` when
  `use_gpu` is true and in a plain step otherwise (docs/gpu.md). With `device: auto` it uses CUDA
  when the step got a GPU and the CPU otherwise (deterministic for a seed and thread count).

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/mil-predict:0.1.0
  SoftwareRequirement:
    packages:
      gcmlm:
        version: ["0.1.0"]
        specs: ["https://github.com/gcmlm/gcmlm"]
      openslide-python:
        version: ["1.4.7"]
        specs: ["https://pypi.org/project/openslide-python/"]
      openslide-bin:
        version: ["4.0.1.2"]
        specs: ["https://pypi.org/project/openslide-bin/"]
      large-image:
        version: ["1.35.6"]
        specs: ["https://pypi.org/project/large-image/"]
      torch:
        version: ["2.14.1"]
        specs: ["https://pypi.org/project/torch/"]
      timm:
        version: ["1.0.22"]
        specs: ["https://pypi.org/project/timm/"]
  ResourceRequirement:
    coresMin: 1
    ramMin: 4096

baseCommand: [gcmlm, mil-predict]

inputs:
  model:
    type: Directory
    inputBinding:
      prefix: --model
    doc: Model folder written by mil-train.
  features:
    type: File[]
    inputBinding:
      prefix: --features
    doc: CLAM feature files (HDF5, edam:format_3590) from patch-embed, one per slide; the slide ID is the file stem.
  slide_map:
    type: File?
    inputBinding:
      prefix: --slide-map
    doc: Cohort manifest or a `patient_id,slide_id` CSV. Without it, each slide is its own patient.
  out_name:
    type: string
    default: mil_risk.csv
    inputBinding:
      prefix: --out
    doc: File name of the patient table.
  device:
    type:
      - "null"
      - type: enum
        symbols: [auto, cpu, cuda]
    inputBinding:
      prefix: --device
    doc: auto (default; CUDA if the step has a GPU, else CPU), cpu or cuda.
  threads:
    type: int?
    inputBinding:
      prefix: --threads
    doc: CPU threads (default torch's); fixed per run for reproducible results.

arguments:
  - prefix: --slide-out
    valueFrom: mil_slide_risk.csv
  - prefix: --attention-dir
    valueFrom: attention

outputs:
  risk:
    type: File
    format: edam:format_3752  # CSV
    outputBinding:
      glob: $(inputs.out_name)
  slide_risk:
    type: File
    format: edam:format_3752
    outputBinding:
      glob: mil_slide_risk.csv
  attention:
    type: File[]
    format: edam:format_3590  # HDF5
    outputBinding:
      glob: attention/*.h5
    doc: One attention file per slide with patches, attention/<slide_id>.h5.
