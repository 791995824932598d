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

  `slide_model` chooses the slide-level model (docs/workflows.md, "Slide model"). `mean` (the
  default) stops at slide-pool's mean features. `abmil` also runs the `mil` sub-workflow on the same
  features: mil-train fits a gated-attention MIL model on ALL the given patients (`labels`, `label`),
  mil-predict writes each patient's MIL risk and every slide's patch attention, and mil-heatmap
  draws the attention of `heatmap_slides` slides (those of highest MIL slide risk) as PNG overlays
  and QuPath GeoJSON regions. That model is the one a pathologist inspects, not a performance
  estimate: its predictions are on its own training patients. The honest estimate of MIL's value
  is fusion-train's nested cross-validation (gc-mlm.cwl with `slide_model: abmil` gives fusion-train
  the features, and it fits MIL on each outer fold's training patients only). mil-train and
  mil-predict run in a step with `cwltool:CUDARequirement` when `use_gpu` is true, like patch-embed.
  On the `mean` path the MIL outputs are null.

$namespaces:
  s: https://schema.org/
  edam: http://edamontology.org/
  cwltool: http://commonwl.org/cwltool#

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  SubworkflowFeatureRequirement: {}
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
  # slide-level model
  slide_model:
    type:
      type: enum
      symbols: [mean, abmil]
    default: mean
    doc: "mean: slide-pool's mean features only; abmil: also train, apply and draw an attention MIL model (needs labels and label)."
  labels:
    type: File?
    doc: Patient table (CSV, patient_id first) holding the outcome; needed by slide_model abmil (mil-train's --labels).
  label:
    type: string?
    doc: Binary outcome column (0/1) of labels; needed by slide_model abmil.
  mil_max_epochs:
    type: int?
    doc: mil-train's most epochs (default 40).
  mil_val_fraction:
    type: float?
    doc: Share of the patients mil-train holds out for early stopping (default 0.2; 0 - none, for tiny cohorts).
  mil_seed:
    type: int?
    doc: mil-train's random seed (default 0).
  mil_threads:
    type: int
    default: 1
    doc: >
      CPU threads of mil-train and mil-predict. One is fastest for ABMIL's small matrices (ten times
      faster than torch's default on a busy 2-core machine), and a fixed count keeps a seed's weights reproducible.
  heatmap_slides:
    type: int
    default: 4
    doc: Attention heatmaps for this many slides, highest MIL slide risk first (0 - every slide with patches).

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

  mil:
    doc: |
      slide_model abmil only (skipped, all outputs null, otherwise): mil-train on every patient ->
      mil-predict (risk, attention per slide) -> mil-heatmap for the chosen slides. Missing labels or
      label stop the run here with a message rather than in mil-train.
    when: |
      ${
        if (inputs.slide_model !== "abmil") { return false; }
        if (inputs.labels === null || inputs.label === null) {
          throw new Error("slide_model abmil needs `labels` (a patient table with the outcome) and `label` (its 0/1 column)");
        }
        return true;
      }
    in:
      slide_model: slide_model
      use_gpu: use_gpu
      features:
        source: [embed_gpu/features_h5, embed_cpu/features_h5]
        linkMerge: merge_flattened
        pickValue: all_non_null
      slides: slides
      slide_map: slide_map
      labels:
        source: labels
        valueFrom: $(self)  # File? -> File: `when` refuses a null before the sub-workflow runs
      label:
        source: label
        valueFrom: $(self)
      max_epochs: mil_max_epochs
      val_fraction: mil_val_fraction
      seed: mil_seed
      threads: mil_threads
      heatmap_slides: heatmap_slides
    out: [model_dir, risk, slide_risk, attention, heatmaps, regions]
    run:
      class: Workflow
      label: "MIL branch: mil-train -> mil-predict -> mil-heatmap"
      doc: Trains on every given patient, scores them with per-patch attention, draws the chosen slides' attention.
      inputs:
        use_gpu: boolean
        features: File[]
        slides: File[]
        slide_map: File
        labels: File
        label: string
        max_epochs: int?
        val_fraction: float?
        seed: int?
        threads: int
        heatmap_slides: int
      steps:
        mil_train_gpu:
          run: ../tools/mil-train/mil-train.cwl
          when: $(inputs.use_gpu)
          hints:
            cwltool:CUDARequirement:
              cudaVersionMin: "11.8"
              cudaComputeCapability: "7.0"
              cudaDeviceCountMin: 1
          in:
            use_gpu: use_gpu
            features: features
            slide_map: slide_map
            labels: labels
            label: label
            max_epochs: max_epochs
            val_fraction: val_fraction
            seed: seed
            threads: threads
          out: [model_dir]
        mil_train_cpu:
          run: ../tools/mil-train/mil-train.cwl
          when: $(!inputs.use_gpu)
          in:
            use_gpu: use_gpu
            features: features
            slide_map: slide_map
            labels: labels
            label: label
            max_epochs: max_epochs
            val_fraction: val_fraction
            seed: seed
            threads: threads
          out: [model_dir]
        mil_predict_gpu:
          run: ../tools/mil-predict/mil-predict.cwl
          when: $(inputs.use_gpu)
          hints:
            cwltool:CUDARequirement:
              cudaVersionMin: "11.8"
              cudaComputeCapability: "7.0"
              cudaDeviceCountMin: 1
          in:
            use_gpu: use_gpu
            model:
              source: [mil_train_gpu/model_dir, mil_train_cpu/model_dir]
              pickValue: first_non_null  # one of the two ran
              valueFrom: $(self)  # Directory? -> Directory for the checker
            features: features
            slide_map: slide_map
            threads: threads
          out: [risk, slide_risk, attention]
        mil_predict_cpu:
          run: ../tools/mil-predict/mil-predict.cwl
          when: $(!inputs.use_gpu)
          in:
            use_gpu: use_gpu
            model:
              source: [mil_train_gpu/model_dir, mil_train_cpu/model_dir]
              pickValue: first_non_null  # one of the two ran
              valueFrom: $(self)  # Directory? -> Directory for the checker
            features: features
            slide_map: slide_map
            threads: threads
          out: [risk, slide_risk, attention]
        choose_heatmaps:
          doc: |
            The slides to draw: the `heatmap_slides` highest in mil_slide_risk.csv (ties by slide ID;
            0 - all), each with its attention file and its slide. CWL reads a file's contents only up
            to 64 KiB (some 1,500 slides); above that, the first slides by ID are drawn.
          in:
            attention:
              source: [mil_predict_gpu/attention, mil_predict_cpu/attention]
              pickValue: first_non_null
              valueFrom: $(self)
            slides: slides
            slide_risk:
              source: [mil_predict_gpu/slide_risk, mil_predict_cpu/slide_risk]
              pickValue: first_non_null
              valueFrom: "$(self.size <= 65536 ? self : null)"
            n: heatmap_slides
          out: [chosen_attention, chosen_slides]
          run:
            class: ExpressionTool
            inputs:
              attention: File[]
              slides: File[]
              slide_risk:
                type: File?
                loadContents: true
              n: int
            outputs:
              chosen_attention: File[]
              chosen_slides: {type: {type: array, items: ["null", File]}}
            expression: |
              ${
                function unquote(text) { return text.trim().replace(/^"(.*)"$/, "$1"); }
                var risk = {};
                if (inputs.slide_risk !== null) {
                  var lines = inputs.slide_risk.contents.split(/\r?\n/).filter(function (l) { return l.trim() !== ""; });
                  var head = lines[0].split(",").map(unquote);
                  var sid = head.indexOf("slide_id"), value = head.indexOf("mil_risk");
                  lines.slice(1).forEach(function (line) {
                    var cells = line.split(",").map(unquote);
                    risk[cells[sid]] = parseFloat(cells[value]);
                  });
                }
                function score(file) { var r = risk[file.nameroot]; return (r === undefined || isNaN(r)) ? -Infinity : r; }
                var chosen = inputs.attention.slice().sort(function (a, b) {
                  var d = score(b) - score(a);
                  if (d !== 0 && !isNaN(d)) { return d; }
                  return a.nameroot < b.nameroot ? -1 : (a.nameroot > b.nameroot ? 1 : 0);
                });
                if (inputs.n > 0) { chosen = chosen.slice(0, inputs.n); }
                var byId = {};
                inputs.slides.forEach(function (s) { byId[s.nameroot] = s; });
                return {chosen_attention: chosen, chosen_slides: chosen.map(function (a) { return byId[a.nameroot] || null; })};
              }
        mil_heatmap:
          run: ../tools/mil-heatmap/mil-heatmap.cwl
          scatter: [attention, slide]
          scatterMethod: dotproduct
          in:
            attention: choose_heatmaps/chosen_attention
            slide: choose_heatmaps/chosen_slides
          out: [heatmap, regions]
      outputs:
        model_dir:
          type: Directory?
          outputSource: [mil_train_gpu/model_dir, mil_train_cpu/model_dir]
          pickValue: first_non_null
        risk:
          type: File?
          outputSource: [mil_predict_gpu/risk, mil_predict_cpu/risk]
          pickValue: first_non_null
        slide_risk:
          type: File?
          outputSource: [mil_predict_gpu/slide_risk, mil_predict_cpu/slide_risk]
          pickValue: first_non_null
        attention:
          type: File[]?
          outputSource: [mil_predict_gpu/attention, mil_predict_cpu/attention]
          pickValue: first_non_null
        heatmaps:
          type: File[]
          outputSource: mil_heatmap/heatmap
        regions:
          type: File[]
          outputSource: mil_heatmap/regions

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
  mil_model:
    type: Directory?
    outputSource: mil/model_dir
    doc: "slide_model abmil: mil-train's folder (model.safetensors, config.json, training.json, learning_curve.png), trained on every patient."
  mil_risk:
    type: File?
    format: edam:format_3752
    outputSource: mil/risk
    doc: "slide_model abmil: mil_risk.csv, one row per patient (patient_id, mil_risk, n_slides, n_patches, ...); in-sample."
  mil_slide_risk:
    type: File?
    format: edam:format_3752
    outputSource: mil/slide_risk
    doc: "slide_model abmil: mil_slide_risk.csv, each slide alone as a bag."
  attention:
    type: File[]?
    format: edam:format_3590
    outputSource: mil/attention
    doc: "slide_model abmil: <slide_id>.h5 per slide with patches (coords, attention; a patient's attention sums to 1)."
  heatmaps:
    type: File[]?
    format: edam:format_3603
    outputSource: mil/heatmaps
    doc: "slide_model abmil: <slide_id>_heatmap.png for the heatmap_slides slides of highest MIL risk."
  heatmap_regions:
    type: File[]?
    outputSource: mil/regions
    doc: "slide_model abmil: <slide_id>_attention.geojson (top-attention regions, level-0 pixels) for QuPath."
