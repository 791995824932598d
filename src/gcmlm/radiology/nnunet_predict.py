"""nnunet-predict: segment CT images with an nnU-Net v2 model zip or results folder.

One process loads the model once (``nnUNetPredictor.initialize_from_trained_model_folder``) and
predicts every image through nnU-Net's own ``predict_from_files``, so masks are those of
``nnUNetv2_predict -f FOLDS -step_size S [--disable_tta] -chk CHECKPOINT`` on the same files.
Images need no ``_0000`` suffix; ``<case>.nii.gz`` (case = file name without extension and
``_0000``) is written on the input CT's grid. Optional: nnU-Net's largest-connected-component
post-processing per label, and a QA overlay PNG per case.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.radiology.core.nnunet import (
    DEFAULT_DEVICE,
    DEVICES,
    FILE_ENDING,
    case_id_from_image,
    checkpoint_folds,
    nnunet_env,
    nnunet_prints_to_log,
    open_model,
    select_device,
    verify_checkpoints,
    verify_plans,
)

log = logging.getLogger("gcmlm")
QA_WINDOW = (-160.0, 240.0)  # HU, abdominal soft-tissue window
QA_SLICES = 3
QA_COLOURS = ("#00e5ff", "#ff3d00", "#ffea00", "#76ff03", "#d500f9")
# Defaults of predict_cases, which the command line shows and uses too (nnUNetv2_predict's).
DEFAULT_CHECKPOINT = "checkpoint_final.pth"
DEFAULT_STEP_SIZE = 0.5
DEFAULT_NUM_PROCESSES = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="ZIP|DIR",
                        help="nnU-Net model zip (nnUNetv2_export_model_to_zip) or trainer results folder")
    parser.add_argument("--images", nargs="+", required=True, metavar="IMG",
                        help="CT images (NIfTI; NRRD/MHA are converted); the case ID is the file name "
                             "without extension and _0000")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for <case>.nii.gz masks")
    parser.add_argument("--configuration", "-c", help="configuration to use when the model holds several")
    parser.add_argument("--folds", "-f", nargs="+", metavar="FOLD",
                        help="folds to ensemble (default: every fold in the model with the checkpoint)")
    parser.add_argument("--checkpoint", "-chk", default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint file name (default: {DEFAULT_CHECKPOINT})")
    parser.add_argument("--step-size", type=float, default=DEFAULT_STEP_SIZE,
                        help=f"sliding-window step as a patch fraction (default {DEFAULT_STEP_SIZE})")
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation (faster)")
    parser.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE,
                        help=f"auto: CUDA if torch sees a GPU, else CPU (default: {DEFAULT_DEVICE})")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads (default as nnU-Net: all CPUs on cpu, 1 on cuda); "
                             "1 is fastest on a shared, oversubscribed machine")
    parser.add_argument("--largest-component", action="store_true",
                        help="keep only the largest connected component of each label (nnU-Net's post-processing)")
    parser.add_argument("--qa-dir", metavar="DIR", help="write a QA overlay PNG per case (CT slices with mask outlines)")
    parser.add_argument("--num-processes-preprocessing", "-npp", type=int, default=DEFAULT_NUM_PROCESSES, metavar="N",
                        help=f"preprocessing processes, as nnUNetv2_predict -npp (default {DEFAULT_NUM_PROCESSES})")
    parser.add_argument("--num-processes-export", "-nps", type=int, default=DEFAULT_NUM_PROCESSES, metavar="N",
                        help=f"export processes, as nnUNetv2_predict -nps (default {DEFAULT_NUM_PROCESSES})")


def case_ids_for(images: list[Path]) -> list[str]:
    """Case IDs of the images (file name without extension and _0000); each image must exist, IDs be unique."""
    ids = [case_id_from_image(p) for p in images]
    seen: dict[str, Path] = {}
    for case, path in zip(ids, images, strict=True):
        require_file(path, "image")
        if case in seen:
            raise GcmlmError(f"case ID '{case}' also comes from {seen[case]}; rename one of them", path)
        seen[case] = path
    return ids


def as_nifti(image: Path, work: Path, case: str) -> Path:
    """nnU-Net reads images by the model's file ending: convert other formats to NIfTI first."""
    if image.name.lower().endswith(FILE_ENDING):
        return image
    from gcmlm.radiology.core.images import read_image, write_image_to

    dest = work / "converted" / f"{case}_0000{FILE_ENDING}"
    dest.parent.mkdir(exist_ok=True)
    write_image_to(read_image(image)[0], dest)
    return dest


def check_predict_options(step_size: float, threads: int | None, num_processes_preprocessing: int,
                          num_processes_export: int) -> None:
    """Refuse option values nnU-Net would fail on (or hang with), before the model is opened."""
    if not 0 < step_size <= 1:  # also refuses NaN
        raise GcmlmError(f"--step-size must be in (0, 1], got {step_size}")
    for flag, value in (("--threads", threads), ("--num-processes-preprocessing", num_processes_preprocessing),
                        ("--num-processes-export", num_processes_export)):
        if value is not None and value < 1:
            raise GcmlmError(f"{flag} must be at least 1, got {value}")


def load_predictor(model_dir: Path, folds: list[str] | None, checkpoint: str, step_size: float,
                   tta: bool, device):
    """nnU-Net's predictor for the model's ``folds`` (None: all with ``checkpoint``), loaded once."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    available = checkpoint_folds(model_dir, checkpoint)
    if not available:
        raise GcmlmError(f"no fold_*/{checkpoint} in the model", model_dir)
    missing = sorted(set(folds or []) - set(available))
    if missing:
        raise GcmlmError(f"fold(s) {', '.join(missing)} not in the model (it has {', '.join(available)})", model_dir)
    use = [f if f == "all" else int(f) for f in (folds or available)]
    verify_plans(model_dir)
    verify_checkpoints(model_dir, [str(f) for f in use], checkpoint)
    predictor = nnUNetPredictor(tile_step_size=step_size, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=True, device=device, verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(model_dir), use, checkpoint)
    return predictor


def keep_largest_components(mask_file: Path, labels: list[int]) -> None:
    """Rewrite ``mask_file`` keeping only the largest connected component of each of ``labels``."""
    import SimpleITK as sitk
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    image = sitk.ReadImage(str(mask_file))
    seg = sitk.GetArrayFromImage(image)
    for label in labels:
        if np.any(seg == label):
            seg = remove_all_but_largest_component_from_segmentation(seg, label)
    out = sitk.GetImageFromArray(seg)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(mask_file), useCompression=True)


def write_qa_png(image_file: Path, mask_file: Path, dest: Path, labels: dict[str, int]) -> None:
    """Axial CT slices through the mask with each label's outline, for a quick visual check."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(image_file))).astype(np.float32)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_file)))
    spacing = sitk.ReadImage(str(mask_file)).GetSpacing()
    slices = np.flatnonzero(seg.reshape(seg.shape[0], -1).any(axis=1))
    if len(slices) == 0:
        chosen = [seg.shape[0] // 2]
    else:
        chosen = sorted({int(slices[int(round(q * (len(slices) - 1)))]) for q in np.linspace(0.2, 0.8, QA_SLICES)})
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.4), squeeze=False)
    foreground = [(n, v) for n, v in labels.items() if v != 0]
    for ax, z in zip(axes[0], chosen, strict=True):
        ax.imshow(ct[z], cmap="gray", vmin=QA_WINDOW[0], vmax=QA_WINDOW[1],
                  aspect=spacing[1] / spacing[0], interpolation="nearest")
        for i, (_, value) in enumerate(foreground):
            if np.any(seg[z] == value):
                ax.contour(seg[z] == value, levels=[0.5], colors=QA_COLOURS[i % len(QA_COLOURS)], linewidths=1.0)
        ax.set_title(f"slice {z}", fontsize=9)
        ax.axis("off")
    handles = [plt.Line2D([], [], color=QA_COLOURS[i % len(QA_COLOURS)], label=n) for i, (n, _) in enumerate(foreground)]
    fig.legend(handles=handles, loc="lower center", ncol=max(1, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(f"{mask_file.name[: -len(FILE_ENDING)]}" + ("" if len(slices) else " (empty mask)"), fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    with atomic_file(dest) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def predict_cases(model: str | os.PathLike, images: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  configuration: str | None = None, folds: Sequence[str | int] | None = None,
                  checkpoint: str = DEFAULT_CHECKPOINT, step_size: float = DEFAULT_STEP_SIZE, tta: bool = True,
                  device: str = DEFAULT_DEVICE, threads: int | None = None, largest_component: bool = False,
                  qa_dir: str | os.PathLike | None = None,
                  num_processes_preprocessing: int = DEFAULT_NUM_PROCESSES,
                  num_processes_export: int = DEFAULT_NUM_PROCESSES) -> list[Path]:
    """Segment ``images`` with an nnU-Net model; returns the masks ``out_dir/<case>.nii.gz``, in order.

    ``model``: a model zip (nnUNetv2_export_model_to_zip) or trainer results folder; ``configuration``
    picks one when it holds several. ``folds``: folds to ensemble (None: every fold with
    ``checkpoint``). ``step_size``: sliding-window step as a patch fraction; ``tta``: mirroring
    test-time augmentation. ``device``: one of :data:`DEVICES`; ``threads``: torch CPU threads.
    ``largest_component``: nnU-Net's largest-connected-component post-processing per label;
    ``qa_dir``: write a QA overlay ``<case>.png`` there. Case IDs are the image file names without
    extension and ``_0000``.
    """
    images = [Path(p) for p in images]
    folds = [str(f) for f in folds] if folds else None
    check_predict_options(step_size, threads, num_processes_preprocessing, num_processes_export)
    cases = case_ids_for(images)
    out = Path(out_dir)
    finals = [out / f"{case}{FILE_ENDING}" for case in cases]
    pngs = [Path(qa_dir) / f"{case}.png" for case in cases] if qa_dir else []
    check_outputs(dirs=[out, qa_dir])  # folders that receive files, never replaced, so they may hold inputs
    check_outputs(files=finals + pngs, inputs=[model, *images])
    torch_device = select_device(device, threads)
    with contextlib.ExitStack() as stack:
        model_dir = stack.enter_context(open_model(model, configuration))
        # everything is staged here; the output folders appear only with complete results
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gcmlm-nnunet-predict-")))
        inputs = [[str(as_nifti(img, work, case))] for img, case in zip(images, cases, strict=True)]
        staged = [work / "masks" / case for case in cases]
        stack.enter_context(nnunet_env())  # no nnUNet_* folders needed; gcmlm's trainers findable
        stack.enter_context(contextlib.redirect_stdout(nnunet_prints_to_log()))
        predictor = load_predictor(model_dir, folds, checkpoint, step_size, tta, torch_device)
        log.info("model %s (%s, folds %s) on %s; %d images", model_dir.name, predictor.trainer_name,
                 ",".join(map(str, folds or checkpoint_folds(model_dir, checkpoint))), torch_device, len(images))
        predictor.predict_from_files(inputs, [str(s) for s in staged], save_probabilities=False, overwrite=True,
                                     num_processes_preprocessing=num_processes_preprocessing,
                                     num_processes_segmentation_export=num_processes_export)
        labels = {str(k): int(v) for k, v in predictor.dataset_json["labels"].items() if isinstance(v, int)}
        masks = [s.with_name(s.name + FILE_ENDING) for s in staged]
        for mask, image, case in zip(masks, inputs, cases, strict=True):
            if not mask.is_file():
                raise GcmlmError(f"nnU-Net wrote no mask for case {case}", image[0])
            if largest_component:
                keep_largest_components(mask, [v for v in labels.values() if v != 0])
            if qa_dir:
                write_qa_png(Path(image[0]), mask, work / "qa" / f"{case}.png", labels)
        for staged_file, final in zip(masks + [work / "qa" / p.name for p in pngs], finals + pngs, strict=True):
            with atomic_file(final) as tmp:  # complete files only, each renamed into place
                shutil.copyfile(staged_file, tmp)
    log.info("wrote %d masks to %s", len(finals), out)
    return finals


def run(args: argparse.Namespace) -> int:
    predict_cases(args.model, args.images, args.out, configuration=args.configuration, folds=args.folds,
                  checkpoint=args.checkpoint, step_size=args.step_size, tta=not args.disable_tta,
                  device=args.device, threads=args.threads, largest_component=args.largest_component,
                  qa_dir=args.qa_dir, num_processes_preprocessing=args.num_processes_preprocessing,
                  num_processes_export=args.num_processes_export)
    return 0
