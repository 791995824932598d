#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: pathology
label: "gcmlm pathology: slides -> tissue patches -> patch features -> one path_ row per patient"
doc: |
  Scatters over the slides: wsi-tile (tissue segmentation, CLAM-layout patch coordinates, QA
  images), then patch-embed (features in CLAM's h5_files/pt_files layout), then gathers every
  slide's features into slide-pool, which writes the patient table (`patient_id`,
  `path_n_slides`, `path_n_patches`, `path_0000`...).

  patch-embed runs in one of two conditional steps over the same tool (docs/gpu.md):
  `use_gpu: true` (the default) runs `embed_gpu`, which carries `cwltool:CUDARequirement`, so
  cwltool and Toil give it a GPU (and refuse to run it where there is none);
  `use_gpu: false` runs `embed_cpu`, which runs anywhere.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/
  cwltool: http://commonwl.org/cwltool#

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
  ScatterFeatureRequirement: {}
  MultipleInputFeatureRequirement: {}
  StepInputExpressionRequirement: {}

inputs:
  slides:
    type: File[]
    doc: Whole-slide images; each file stem is a slide ID (must be unique).
  slide_map:
    type: File
    doc: Cohort manifest or a `patient_id,slide_id` CSV mapping slides to patients.
  use_gpu:
    type: boolean
    default: true
    doc: true runs patch-embed on a GPU (cwltool:CUDARequirement); false runs it on CPU.
  # tiling (wsi-tile); unset values take wsi-tile's defaults (CLAM's)
  preset:
    type: string?
    doc: CLAM preset (bwh_biopsy, bwh_resection, tcga).
  preset_csv:
    type: File?
    doc: A CLAM preset CSV; wins over `preset`.
  patch_size:
    type: int?
    doc: Patch size in output pixels (default 256).
  step_size:
    type: int?
  mag:
    type: float?
    doc: Target magnification, e.g. 20.
  target_mpp:
    type: float?
    doc: Target microns per pixel, e.g. 0.5.
  patch_level:
    type: int?
  mpp:
    type: float?
    doc: Level-0 mpp for slides whose file states none (applies to every slide).
  mpp_csv:
    type: File?
    doc: Per-slide mpp table (slide_id, mpp).
  min_tissue:
    type: float?
  # embedding (patch-embed)
  encoder:
    type: string
    doc: uni_v1, resnet50_trunc or a timm model name.
  encoder_checkpoint:
    type: File?
    doc: Local weights for the encoder (e.g. UNI's pytorch_model.bin).
  allow_random_weights:
    type: boolean
    default: false
    doc: Embed with untrained weights when no checkpoint is given (tests only; recorded in the outputs).
  batch_size:
    type: int
    default: 256
  num_workers:
    type: int?
    doc: Patch reader processes per slide (default the step's cores minus one).

steps:
  tile:
    run: ../tools/wsi-tile/wsi-tile.cwl
    scatter: slide
    in:
      slide: slides
      preset: preset
      preset_csv: preset_csv
      patch_size: patch_size
      step_size: step_size
      mag: mag
      target_mpp: target_mpp
      patch_level: patch_level
      mpp: mpp
      mpp_csv: mpp_csv
      min_tissue: min_tissue
    out: [coords, mask_png, stitch_png, summary]

  embed_gpu:
    run: ../tools/patch-embed/patch-embed.cwl
    when: $(inputs.use_gpu)
    hints:
      cwltool:CUDARequirement:
        cudaVersionMin: "11.8"
        cudaComputeCapability: "7.0"
        cudaDeviceCountMin: 1
    scatter: [slide, coords]
    scatterMethod: dotproduct
    in:
      use_gpu: use_gpu
      slide: slides
      coords: tile/coords
      encoder: encoder
      checkpoint: encoder_checkpoint
      allow_random_weights: allow_random_weights
      batch_size: batch_size
      num_workers: num_workers
      device:
        default: cuda
    out: [features_h5, features_pt]

  embed_cpu:
    run: ../tools/patch-embed/patch-embed.cwl
    when: $(!inputs.use_gpu)
    scatter: [slide, coords]
    scatterMethod: dotproduct
    in:
      use_gpu: use_gpu
      slide: slides
      coords: tile/coords
      encoder: encoder
      checkpoint: encoder_checkpoint
      allow_random_weights: allow_random_weights
      batch_size: batch_size
      num_workers: num_workers
      device:
        default: cpu
    out: [features_h5, features_pt]

  pool:
    run: ../tools/slide-pool/slide-pool.cwl
    in:
      features:
        source: [embed_gpu/features_h5, embed_cpu/features_h5]
        linkMerge: merge_flattened
        pickValue: all_non_null
      slide_map: slide_map
    out: [patient_table, slide_table, report]

outputs:
  patient_table:
    type: File
    format: edam:format_3752  # CSV
    outputSource: pool/patient_table
    doc: One row per patient; path_ features (patch-count-weighted mean over the patient's slides).
  slide_table:
    type: File
    format: edam:format_3752
    outputSource: pool/slide_table
  pool_report:
    type: File
    format: edam:format_3464  # JSON
    outputSource: pool/report
  coords:
    type: File[]
    format: edam:format_3590  # HDF5
    outputSource: tile/coords
    doc: patches/<slide_id>.h5 per slide (CLAM layout).
  masks:
    type: File[]
    format: edam:format_3603  # PNG
    outputSource: tile/mask_png
  stitches:
    type: File[]
    format: edam:format_3603
    outputSource: tile/stitch_png
  tiling_summaries:
    type: File[]
    format: edam:format_3464
    outputSource: tile/summary
  features_h5:
    type: File[]
    format: edam:format_3590
    outputSource: [embed_gpu/features_h5, embed_cpu/features_h5]
    linkMerge: merge_flattened
    pickValue: all_non_null
    doc: h5_files/<slide_id>.h5 per slide (CLAM layout).
  features_pt:
    type: File[]
    outputSource: [embed_gpu/features_pt, embed_cpu/features_pt]
    linkMerge: merge_flattened
    pickValue: all_non_null
