#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
id: radiology
label: "gcmlm radiology: CT -> nnU-Net segmentation -> PyRadiomics features, one patient table"
doc: |
  Per patient (scattered): ct-preprocess (read the CT, DICOM folder or volume file, optionally
  resample) -> nnunet-predict (segment with an nnU-Net v2 model zip; QA overlay PNG) ->
  radiomics-extract (PyRadiomics features of one label of the predicted mask). The per-patient
  rows are then joined into one patient table (`patient_id`, `rad_*`).
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
  patient:
    scatter: [image, patient_id]
    scatterMethod: dotproduct
    in:
      image: ct_images
      patient_id: patient_ids
      model: model
      spacing: spacing
      use_gpu: use_gpu
      disable_tta: disable_tta
      radiomics_label: radiomics_label
      radiomics_params: radiomics_params
      radiomics_params_name: radiomics_params_name
    out: [preprocessed, preprocess_report, mask, qa_overlay, features, diagnostics]
    run:
      class: Workflow
      doc: One patient through preprocessing, segmentation and feature extraction.
      inputs:
        image: [File, Directory]
        patient_id: string
        model: File
        spacing: float[]?
        use_gpu: boolean
        disable_tta: boolean
        radiomics_label: int
        radiomics_params: File?
        radiomics_params_name: string
      steps:
        preprocess:
          run: ../tools/ct-preprocess/ct-preprocess.cwl
          in:
            image: image
            spacing: spacing
            out_name:  # nnU-Net's channel naming: the mask comes back as <patient_id>.nii.gz
              source: patient_id
              valueFrom: $(self)_0000.nii.gz
            report_name:
              source: patient_id
              valueFrom: $(self)_ct_preprocess.json
          out: [image_out, report]
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
            images:
              source: [preprocess/image_out]
              linkMerge: merge_nested
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
            images:
              source: [preprocess/image_out]
              linkMerge: merge_nested
            disable_tta: disable_tta
            device:
              default: cpu
          out: [masks, qa_images]
        predicted:
          doc: The one mask and QA overlay of this patient, from whichever predict step ran.
          in:
            masks:
              source: [predict_gpu/masks, predict_cpu/masks]
              pickValue: the_only_non_null
            qa_overlays:
              source: [predict_gpu/qa_images, predict_cpu/qa_images]
              pickValue: the_only_non_null
          out: [mask, qa_overlay]
          run:
            class: ExpressionTool
            inputs:
              masks: File[]
              qa_overlays: File[]
            outputs:
              mask: File
              qa_overlay: File
            expression: '$({mask: inputs.masks[0], qa_overlay: inputs.qa_overlays[0]})'
        radiomics:
          run: ../tools/radiomics-extract/radiomics-extract.cwl
          in:
            image: preprocess/image_out
            mask: predicted/mask
            patient_id: patient_id
            label: radiomics_label
            params: radiomics_params
            params_name: radiomics_params_name
            out_name:
              source: patient_id
              valueFrom: $(self)_radiomics.csv
            diagnostics_name:
              source: patient_id
              valueFrom: $(self)_radiomics_diagnostics.json
          out: [features, diagnostics]
      outputs:
        preprocessed:
          type: File
          outputSource: preprocess/image_out
        preprocess_report:
          type: File
          outputSource: preprocess/report
        mask:
          type: File
          outputSource: predicted/mask
        qa_overlay:
          type: File
          outputSource: predicted/qa_overlay
        features:
          type: File
          outputSource: radiomics/features
        diagnostics:
          type: File?
          outputSource: radiomics/diagnostics

  patient_table:
    run: ../tools/radiomics-extract/radiomics-extract.cwl
    in:
      tables: patient/features
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
    outputSource: patient/mask
    doc: Predicted label map per patient (NIfTI, on the preprocessed CT's grid).
  qa_overlays:
    type: File[]
    outputSource: patient/qa_overlay
    doc: QA overlay PNG per patient (CT slices with the mask outline).
  preprocessed_cts:
    type: File[]
    outputSource: patient/preprocessed
    doc: The CTs as segmented, <patient_id>_0000.nii.gz (nnU-Net's channel naming).
  preprocess_reports:
    type: File[]
    outputSource: patient/preprocess_report
  radiomics_diagnostics:
    type:
      type: array
      items: ["null", File]
    outputSource: patient/diagnostics
    doc: PyRadiomics' diagnostics (versions, settings, mask checks) per patient.
