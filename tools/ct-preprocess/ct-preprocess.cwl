#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: ct-preprocess
label: "gcmlm ct-preprocess: read a CT, resample to a fixed spacing, clip and normalise"
doc: |
  Reads a CT as a DICOM series folder, NIfTI, NRRD or MetaImage and writes NIfTI. Optionally
  resamples to a voxel spacing (B-spline or linear for the image, nearest neighbour for a label
  map, both on the same output grid; direction and field-of-view corner kept), clips intensities
  to a window and z-score normalises (over the image, the mask or the body). A DICOM folder with
  several series (unless `series_uid` picks one), missing slices or uneven slice spacing is an
  error. A JSON report records input and output grids, the interpolator, the clip window and the
  normalisation statistics.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/ct-preprocess:0.1.0
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
    coresMin: 1
    ramMin: 4096

baseCommand: [gcmlm, ct-preprocess]

inputs:
  image:
    type: [File, Directory]
    inputBinding:
      prefix: --image
    doc: CT as a DICOM series folder (Directory) or a NIfTI (edam:format_3549), NRRD or MHA file.
  series_uid:
    type: string?
    inputBinding:
      prefix: --series-uid
    doc: SeriesInstanceUID to read when the DICOM folder holds several series.
  spacing:
    type: float[]?
    inputBinding:
      prefix: --spacing
    doc: Output voxel spacing in mm (three values, x y z). Without it the input grid is kept.
  interpolator:
    type:
      - "null"
      - type: enum
        symbols: [bspline, linear]
    inputBinding:
      prefix: --interpolator
    doc: Image interpolator for resampling (default bspline); label maps always use nearest neighbour.
  mask:
    type: File?
    inputBinding:
      prefix: --mask
    doc: Label map on the image grid; resampled onto the output grid with nearest neighbour.
  clip:
    type: float[]?
    inputBinding:
      prefix: --clip
    doc: Intensity window LOW HIGH (e.g. -200 300 HU).
  zscore:
    type: boolean?
    inputBinding:
      prefix: --zscore
    doc: Normalise to zero mean and unit variance.
  zscore_region:
    type:
      - "null"
      - type: enum
        symbols: [image, mask, body]
    inputBinding:
      prefix: --zscore-region
    doc: Voxels the z-score statistics come from (default image; body = above body_threshold).
  body_threshold:
    type: float?
    inputBinding:
      prefix: --body-threshold
    doc: Intensity above which a voxel is body (default -500 HU).
  out_name:
    type: string
    default: ct.nii.gz
    inputBinding:
      prefix: --out
    doc: File name of the preprocessed image (.nii.gz or .nii).
  mask_out_name:
    type: string
    default: mask.nii.gz
    doc: File name of the resampled label map (written only with `mask`).
  report_name:
    type: string
    default: ct_preprocess_report.json
    doc: File name of the JSON report.

arguments:
  - prefix: --report
    valueFrom: $(inputs.report_name)
  - valueFrom: '$(inputs.mask ? ["--mask-out", inputs.mask_out_name] : [])'

outputs:
  image_out:
    type: File
    format: edam:format_3549  # NIfTI-1
    outputBinding:
      glob: $(inputs.out_name)
  mask_out:
    type: File?
    format: edam:format_3549  # NIfTI-1
    outputBinding:
      glob: '$(inputs.mask ? inputs.mask_out_name : [])'
  report:
    type: File
    format: edam:format_3464  # JSON
    outputBinding:
      glob: $(inputs.report_name)
