#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: mil-train
label: "gcmlm mil-train: train a gated-attention MIL model on patient bags of patch features"
doc: |
  Trains attention-based multiple-instance learning (gated ABMIL, Ilse et al. 2018) on CLAM-layout
  patch features. A patient is one bag: the patches of all of its slides. Early stopping uses a
  stratified validation split drawn from the given (training) patients only. Writes a model folder:
  `model.safetensors` (weights only, nothing pickled), `config.json` (architecture, feature
  dimension, the encoder named by the features' attrs, training summary), `training.json` (loss
  curves, chosen epoch, inner split) and `learning_curve.png`.

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
    dockerPull: ghcr.io/gcmlm/mil-train:0.1.0
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
    ramMin: 4096

baseCommand: [gcmlm, mil-train]

inputs:
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
  labels:
    type: File
    inputBinding:
      prefix: --labels
    doc: Patient table (CSV, patient_id first) holding the outcome.
  label:
    type: string
    inputBinding:
      prefix: --label
    doc: Binary outcome column (0/1).
  out_name:
    type: string
    default: mil_model
    inputBinding:
      prefix: --out
    doc: Name of the model folder.
  model:
    type:
      - "null"
      - type: enum
        symbols: [abmil]
    inputBinding:
      prefix: --model
    doc: MIL architecture (default abmil, gated attention).
  hidden:
    type: int?
    inputBinding:
      prefix: --hidden
    doc: Patch embedding width (default 128).
  attention_dim:
    type: int?
    inputBinding:
      prefix: --attention-dim
    doc: Gated attention width (default 64).
  dropout:
    type: float?
    inputBinding:
      prefix: --dropout
    doc: Dropout after the patch embedding (default 0.25).
  lr:
    type: float?
    inputBinding:
      prefix: --lr
    doc: AdamW learning rate (default 2e-4).
  weight_decay:
    type: float?
    inputBinding:
      prefix: --weight-decay
    doc: AdamW weight decay (default 1e-4).
  max_epochs:
    type: int?
    inputBinding:
      prefix: --max-epochs
    doc: Most epochs (default 40).
  patience:
    type: int?
    inputBinding:
      prefix: --patience
    doc: Stop after this many epochs without a lower validation loss (default 8).
  val_fraction:
    type: float?
    inputBinding:
      prefix: --val-fraction
    doc: Stratified share of the patients held out for early stopping (default 0.2; 0 - none).
  max_patches:
    type: int?
    inputBinding:
      prefix: --max-patches
    doc: Random patches per bag and epoch in training (default 1024; 0 - all).
  seed:
    type: int?
    inputBinding:
      prefix: --seed
    doc: Random seed (default 0).
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

outputs:
  model_dir:
    type: Directory
    outputBinding:
      glob: $(inputs.out_name)
    doc: The model folder (model.safetensors, config.json, training.json, learning_curve.png).
  training:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: $(inputs.out_name)/training.json
  learning_curve:
    type: File
    format: edam:format_3603  # PNG
    outputBinding:
      glob: $(inputs.out_name)/learning_curve.png
