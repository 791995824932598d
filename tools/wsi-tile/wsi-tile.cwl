#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: wsi-tile
label: "gcmlm wsi-tile: tissue segmentation and CLAM-layout patch coordinates for one slide"
doc: |
  Segments tissue in a whole-slide image as CLAM's create_patches_fp does (HSV saturation, median
  blur, fixed or Otsu threshold, closing, contour and hole filtering in CLAM's a_t / a_h units) and
  writes the patch grid in CLAM's layout: `patches/<slide_id>.h5` (`coords` (N, 2) level-0
  top-left, attrs patch_size, patch_level, downsample, level_dim, downsampled_level_dim, name, plus
  patch_size_level0, target_mpp, target_magnification, mpp, reader), a mask and a stitch PNG, and a
  JSON summary (patch count, tissue area in mm^2, parameters, timings).
  Reads every format OpenSlide reads and falls back to large-image. Grid by pyramid level (CLAM's
  way, default level 0) or by target magnification / mpp (read from the best level and resized).
  A slide without a plausible mpp needs `mpp`. A slide without tissue gives an empty coords file.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/wsi-tile:0.1.0
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

baseCommand: [gcmlm, wsi-tile]

arguments:
  - prefix: --out
    valueFrom: $(runtime.outdir)

inputs:
  slide:
    type: File
    inputBinding:
      prefix: --slide
    secondaryFiles:
      - pattern: "$(self.nameext == '.mrxs' ? self.nameroot : null)"
        required: false
    doc: Whole-slide image (SVS, NDPI, MRXS + its folder, SCN, tiled TIFF, OME-TIFF, DICOM, ...). The slide ID is the file stem.
  preset:
    type: string?
    inputBinding:
      prefix: --preset
    doc: A shipped CLAM preset (bwh_biopsy, bwh_resection, tcga). Explicit inputs below override its values.
  preset_csv:
    type: File?
    inputBinding:
      prefix: --preset
    doc: A CLAM preset CSV (CLAM's columns); wins over `preset`.
  patch_size:
    type: int?
    inputBinding:
      prefix: --patch-size
    doc: Patch size in output pixels (default 256).
  step_size:
    type: int?
    inputBinding:
      prefix: --step-size
    doc: Grid step in output pixels (default the patch size).
  mag:
    type: float?
    inputBinding:
      prefix: --mag
    doc: Target magnification (e.g. 20); exclusive with target_mpp and patch_level.
  target_mpp:
    type: float?
    inputBinding:
      prefix: --target-mpp
    doc: Target microns per pixel (e.g. 0.5); exclusive with mag and patch_level.
  patch_level:
    type: int?
    inputBinding:
      prefix: --patch-level
    doc: Pyramid level to patch at, as CLAM does (default 0 when neither mag nor target_mpp is given).
  mpp:
    type: float?
    inputBinding:
      prefix: --mpp
    doc: Level-0 microns per pixel, for slides whose file does not state a plausible one.
  mpp_csv:
    type: File?
    inputBinding:
      prefix: --mpp-csv
    doc: Per-slide mpp table (columns slide_id or slide, and mpp).
  min_tissue:
    type: float?
    inputBinding:
      prefix: --min-tissue
    doc: Drop patches whose tissue-mask coverage is below this fraction (default 0, CLAM's behaviour).
  seg_level:
    type: int?
    inputBinding:
      prefix: --seg-level
    doc: Level to segment at (-1 = best level for downsample 64).
  sthresh:
    type: int?
    inputBinding:
      prefix: --sthresh
    doc: Saturation threshold.
  mthresh:
    type: int?
    inputBinding:
      prefix: --mthresh
    doc: Median blur kernel size (odd).
  close:
    type: int?
    inputBinding:
      prefix: --close
    doc: Morphological closing kernel size (0 = none).
  use_otsu:
    type: boolean?
    inputBinding:
      prefix: --use-otsu
      valueFrom: "$(self === null ? null : (self ? 'true' : 'false'))"
    doc: Otsu threshold instead of sthresh.
  a_t:
    type: float?
    inputBinding:
      prefix: --a-t
    doc: Minimum tissue contour area, in 512x512 level-0 reference patches.
  a_h:
    type: float?
    inputBinding:
      prefix: --a-h
    doc: Minimum hole area, same unit.
  max_n_holes:
    type: int?
    inputBinding:
      prefix: --max-n-holes
    doc: Holes kept per contour.
  contour_fn:
    type:
      - "null"
      - type: enum
        symbols: [four_pt, four_pt_hard, center, basic]
    inputBinding:
      prefix: --contour-fn
    doc: Patch-in-tissue test (CLAM's names; four_pt keeps a patch when ANY of its four points is in tissue).
  use_padding:
    type: boolean?
    inputBinding:
      prefix: --use-padding
      valueFrom: "$(self === null ? null : (self ? 'true' : 'false'))"
    doc: Allow patches that extend past the slide edge (CLAM's default true).
  keep_ids:
    type: string?
    inputBinding:
      prefix: --keep-ids
    doc: Keep only these tissue contours, comma-separated indices "I,J" (CLAM's keep_ids).
  exclude_ids:
    type: string?
    inputBinding:
      prefix: --exclude-ids
    doc: Drop these tissue contours, comma-separated indices "I,J" (CLAM's exclude_ids).
  vis_level:
    type: int?
    inputBinding:
      prefix: --vis-level
    doc: Level of the QA images (-1 = best level for downsample 64).
  line_thickness:
    type: int?
    inputBinding:
      prefix: --line-thickness
    doc: Contour line width at level 0 in the QA images (default 250).

outputs:
  coords:
    type: File
    format: edam:format_3590  # HDF5
    outputBinding:
      glob: patches/*.h5
    doc: CLAM patch coordinates, patches/<slide_id>.h5.
  mask_png:
    type: File
    format: edam:format_3603  # PNG
    outputBinding:
      glob: masks/*.png
      # Renamed so that masks and patch maps of one slide can share a flat output folder.
      outputEval: ${ self[0].basename = self[0].nameroot + "_tissue.png"; return self[0]; }
    doc: Tissue contours (green) and holes (blue) on a thumbnail, <slide_id>_tissue.png (masks/ in CLAM).
  stitch_png:
    type: File
    format: edam:format_3603
    outputBinding:
      glob: stitches/*.png
      outputEval: ${ self[0].basename = self[0].nameroot + "_patches.png"; return self[0]; }
    doc: The patches' pixels on a black canvas, <slide_id>_patches.png (stitches/ in CLAM).
  summary:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: "*.json"
    doc: Patch count, tissue area (mm^2), parameters and timings.
