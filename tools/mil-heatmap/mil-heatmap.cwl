#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
id: mil-heatmap
label: "gcmlm mil-heatmap: a slide's MIL attention as a PNG overlay and QuPath GeoJSON regions"
doc: |
  Reads a mil-predict attention file (`coords` + `attention`) and, when given, the slide for its
  thumbnail; nothing is embedded again. Writes `<slide_id>_heatmap.png` (attention percentiles in the
  turbo colour map over the thumbnail, colour bar, tissue outline, top regions outlined) and
  `<slide_id>_attention.geojson` (the top `top_fraction` of patches merged into polygons in level-0
  pixels, classification "High attention", which QuPath imports).

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  InlineJavascriptRequirement: {}
hints:
  DockerRequirement:
    dockerPull: ghcr.io/gcmlm/mil-heatmap:0.1.0
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
    ramMin: 2048

baseCommand: [gcmlm, mil-heatmap]

inputs:
  attention:
    type: File
    inputBinding:
      prefix: --attention
    doc: mil-predict's attention file (HDF5, edam:format_3590), attention/<slide_id>.h5.
  slide:
    type: File?
    inputBinding:
      prefix: --slide
    doc: The whole-slide image, for the thumbnail and the tissue outline; without it, a white canvas.
  top_fraction:
    type: float?
    inputBinding:
      prefix: --top-fraction
    doc: Share of the slide's patches, by attention, in the regions (default 0.1).
  max_side:
    type: int?
    inputBinding:
      prefix: --max-side
    doc: Longest side of the thumbnail in pixels (default 2048).

arguments:
  - prefix: --out
    valueFrom: $(inputs.attention.nameroot)_heatmap.png
  - prefix: --geojson
    valueFrom: $(inputs.attention.nameroot)_attention.geojson

outputs:
  heatmap:
    type: File
    format: edam:format_3603  # PNG
    outputBinding:
      glob: "*_heatmap.png"
  regions:
    type: File
    outputBinding:
      glob: "*_attention.geojson"
    doc: GeoJSON FeatureCollection (level-0 pixels) for QuPath.
