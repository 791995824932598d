#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: radiology
label: "gcmlm radiology: CT -> nnU-Net segmentation -> PyRadiomics features, one patient table"
doc: |
  ct-preprocess per patient (scattered: read the CT, DICOM folder or volume file, optionally
  resample) -> nnunet-predict once for the cohort (the model is loaded once; QA overlay PNG per
  patient) -> radiomics-extract per patient (scattered: PyRadiomics features of one label of the
  predicted mask). The per-patient rows are then joined into one patient table (`patient_id`, `rad_*`).
  nnunet-predict is declared twice, with and without a CUDA hint, and `use_gpu` picks one
  (docs/gpu.md): `use_gpu: false` runs everywhere, `use_gpu: true` asks the runner for a GPU.

$namespaces:
  s: https://schema.org/
  cwltool: http://commonwl.org/cwltool#

s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/gcmlm/gcmlm

requirements:
  ScatterFeatureRequirement: {}
  SubworkflowFeatureRequirement: {}
  InlineJavascriptRequirement: {}
  StepInputExpressionRequirement: {}
  MultipleInputFeatureRequirement: {}

inputs:
  ct_images:
    type:
      type: array
      items: [File, Directory]
    doc: One CT per patient (NIfTI, NRRD, MHA file or DICOM series folder), in the order of patient_ids.
  patient_ids:
    type: string[]
    doc: Patient IDs, one per CT; they name the intermediate files and the table rows.
  model:
    type: File
    doc: nnU-Net v2 model zip (nnUNetv2_export_model_to_zip, or gcmlm nnunet-train's output).
  spacing:
    type: float[]?
    doc: Resample every CT to this spacing (mm, x y z) before segmentation; default keep the CT's grid.
  use_gpu:
    type: boolean
    default: true
    doc: false runs nnunet-predict on CPU (no CUDA requirement).
  disable_tta:
    type: boolean
    default: false
    doc: Predict without mirroring test-time augmentation (faster, slightly less accurate).
  radiomics_label:
    type: int
    default: 2
    doc: Label value of the predicted mask to describe (the demo model's tumour label is 2).
  radiomics_params:
    type: File?
    doc: PyRadiomics parameter file; default the shipped CT setting (radiomics_params_name).
  radiomics_params_name:
    type: string
    default: ct_default
    doc: Shipped PyRadiomics setting used when radiomics_params is not given (ct_default, ibsi).

steps:
  preprocess:
    doc: Each patient's CT, resampled and written as <patient_id>_0000.nii.gz (nnU-Net's channel naming).
    run: ../tools/ct-preprocess/ct-preprocess.cwl
    scatter: [image, patient_id]
    scatterMethod: dotproduct
    in:
      image: ct_images
      patient_id: patient_ids
      spacing: spacing
      out_name:
        valueFrom: $(inputs.patient_id)_0000.nii.gz
      report_name:
        valueFrom: $(inputs.patient_id)_ct_preprocess.json
    out: [image_out, report]

  # One nnunet-predict call for the whole cohort: the model is loaded once, not once per patient.
  predict_gpu:
    run: ../tools/nnunet-predict/nnunet-predict.cwl
    when: $(inputs.use_gpu)
    hints:
      cwltool:CUDARequirement:
        cudaVersionMin: "11.8"
        cudaComputeCapability: "7.0"
        cudaDeviceCountMin: 1
    in:
      use_gpu: use_gpu
      model: model
      images: preprocess/image_out
      disable_tta: disable_tta
      device:
        default: cuda
    out: [masks, qa_images]
  predict_cpu:
    run: ../tools/nnunet-predict/nnunet-predict.cwl
    when: $(!inputs.use_gpu)
    in:
      use_gpu: use_gpu
      model: model
      images: preprocess/image_out
      disable_tta: disable_tta
      device:
        default: cpu
    out: [masks, qa_images]

  per_patient:
    doc: Masks and QA overlays in patient order (nnunet-predict names them <patient_id>.nii.gz / .png).
    in:
      patient_ids: patient_ids
      predicted_masks:
        source: [predict_gpu/masks, predict_cpu/masks]
        pickValue: the_only_non_null
      predicted_qa:
        source: [predict_gpu/qa_images, predict_cpu/qa_images]
        pickValue: the_only_non_null
    out: [masks, qa_overlays]
    run:
      class: ExpressionTool
      inputs:
        patient_ids: string[]
        predicted_masks: File[]
        predicted_qa: File[]
      outputs:
        masks: File[]
        qa_overlays: File[]
      expression: |
        ${
          function byName(files, suffix) {
            var found = {};
            files.forEach(function (f) { found[f.basename] = f; });
            return inputs.patient_ids.map(function (id) {
              if (!(id + suffix in found)) { throw "nnunet-predict wrote no " + id + suffix; }
              return found[id + suffix];
            });
          }
          return {masks: byName(inputs.predicted_masks, ".nii.gz"), qa_overlays: byName(inputs.predicted_qa, ".png")};
        }

  radiomics:
    run: ../tools/radiomics-extract/radiomics-extract.cwl
    scatter: [image, mask, patient_id]
    scatterMethod: dotproduct
    in:
      image: preprocess/image_out
      mask: per_patient/masks
      patient_id: patient_ids
      label: radiomics_label
      params: radiomics_params
      params_name: radiomics_params_name
      out_name:
        valueFrom: $(inputs.patient_id)_radiomics.csv
      diagnostics_name:
        valueFrom: $(inputs.patient_id)_radiomics_diagnostics.json
    out: [features, diagnostics]

  patient_table:
    run: ../tools/radiomics-extract/radiomics-extract.cwl
    in:
      tables: radiomics/features
      out_name:
        default: radiomics_features.csv
    out: [features]

outputs:
  radiomics_table:
    type: File
    outputSource: patient_table/features
    doc: Patient table (patient_id, rad_* PyRadiomics features), one row per patient.
  masks:
    type: File[]
    outputSource: per_patient/masks
    doc: Predicted label map per patient (NIfTI, on the preprocessed CT's grid).
  qa_overlays:
    type: File[]
    outputSource: per_patient/qa_overlays
    doc: QA overlay PNG per patient (CT slices with the mask outline).
  preprocessed_cts:
    type: File[]
    outputSource: preprocess/image_out
    doc: The CTs as segmented, <patient_id>_0000.nii.gz (nnU-Net's channel naming).
  preprocess_reports:
    type: File[]
    outputSource: preprocess/report
  radiomics_diagnostics:
    type:
      type: array
      items: ["null", File]
    outputSource: radiomics/diagnostics
    doc: PyRadiomics' diagnostics (versions, settings, mask checks) per patient.
