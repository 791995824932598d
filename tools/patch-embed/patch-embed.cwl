#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: patch-embed
label: "gcmlm patch-embed: embed a slide's patches with UNI, CLAM's ResNet-50 or a timm model"
doc: |
  Reads the patches listed in a CLAM coords file straight from the slide (parallel readers, block
  reads, batched transforms), embeds them and writes CLAM's feature layout:
  `h5_files/<slide_id>.h5` (`features` (N, D) float32, `coords` (N, 2)) and
  `pt_files/<slide_id>.pt`. The .h5 attrs record the encoder, the checkpoint's sha256 (or
  "random"), the precision and the transform.

  This tool declares no GPU: `workflows/pathology.cwl` runs it in a step with
  `cwltool:CUDARequirement` when `use_gpu` is true and in a plain step otherwise (docs/gpu.md).
  With `device: auto` it uses CUDA when the step got a GPU (bf16 autocast) and the CPU otherwise.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/patch-embed:0.1.0
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
    coresMin: 2
    ramMin: 8192

baseCommand: [gcmlm, patch-embed]

inputs:
  slide:
    type: File
    inputBinding:
      prefix: --slide
    doc: Whole-slide image (SVS, NDPI, MRXS, SCN, tiled TIFF, DICOM, OME-TIFF...). Its file stem is the slide ID.
  coords:
    type: File
    inputBinding:
      prefix: --coords
    doc: CLAM patch file (HDF5, edam:format_3590) from wsi-tile or CLAM's create_patches_fp.
  encoder:
    type: string
    inputBinding:
      prefix: --encoder
    doc: uni_v1, resnet50_trunc or a timm model name.
  checkpoint:
    type: File?
    inputBinding:
      prefix: --checkpoint
    doc: Local weights (state_dict .bin/.pth/.pt or .safetensors), loaded weights-only and strictly. UNI's are pytorch_model.bin from its gated Hugging Face repository.
  allow_random_weights:
    type: boolean?
    inputBinding:
      prefix: --allow-random-weights
    doc: Embed with untrained weights when no checkpoint is given (tests only; recorded in the output).
  batch_size:
    type: int?
    inputBinding:
      prefix: --batch-size
    doc: Patches per batch (default 256).
  device:
    type:
      - "null"
      - type: enum
        symbols: [auto, cpu, cuda]
    inputBinding:
      prefix: --device
    doc: auto (default; CUDA if the step has a GPU, else CPU), cpu or cuda.
  precision:
    type:
      - "null"
      - type: enum
        symbols: [auto, fp32, bf16, fp16]
    inputBinding:
      prefix: --precision
    doc: auto (default; bf16/fp16 autocast on GPU, fp32 on CPU), fp32, bf16 or fp16.
  threads:
    type: int?
    inputBinding:
      prefix: --threads
    doc: CPU compute threads (default torch's); fixed per run for determinism.
  num_workers:
    type: int?
    doc: Reader processes, each with its own slide handle. Default - the step's cores minus one.

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)
  - prefix: --num-workers
    valueFrom: "$(inputs.num_workers === null ? Math.max(0, runtime.cores - 1) : inputs.num_workers)"

outputs:
  features_h5:
    type: File
    format: edam:format_3590  # HDF5
    outputBinding:
      glob: h5_files/*.h5
  features_pt:
    type: File
    outputBinding:
      glob: pt_files/*.pt
