"""nnunet-train: train one nnU-Net v2 fold, run its validation and export nnU-Net's model zip.

The equivalent of ``nnUNetv2_train DATASET CONFIG FOLD -tr TRAINER -p PLANS`` followed by
``nnUNetv2_export_model_to_zip``. Training reads only the preprocessed dataset folder (nnU-Net
copies the ground truth there for validation), which is linked, never modified. Short runs
(``--epochs`` and friends) use gcmlm's ``<trainer>_gcmlmShort`` classes, found by nnU-Net through
``nnUNet_extTrainer``, so the zip predicts anywhere gcmlm is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from gcmlm.common.atomic import atomic_file
from gcmlm.common.errors import GcmlmError
from gcmlm.radiology.core.nnunet import (
    CONFIGURATIONS,
    check_trainer_name,
    export_model_zip,
    nnunet_env,
    nnunet_prints_to_log,
    parse_dataset_name,
    read_json,
    select_device,
    stage_dataset_folder,
)

log = logging.getLogger("gcmlm")
# nnU-Net trainer -> gcmlm class that runs it with a settable length (gcmlm.radiology.core.nnunet_trainers)
SHORT_TRAINERS = {"nnUNetTrainer": "nnUNetTrainer_gcmlmShort", "nnUNetTrainerNoDA": "nnUNetTrainerNoDA_gcmlmShort"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preprocessed", required=True, metavar="DIR",
                        help="preprocessed dataset folder DatasetNNN_Name (from nnunet-plan or nnUNetv2_plan_and_preprocess)")
    parser.add_argument("--out", required=True, metavar="ZIP", help="model zip to write (nnUNetv2_export_model_to_zip format)")
    parser.add_argument("--configuration", "-c", default="3d_fullres", choices=CONFIGURATIONS,
                        help="nnU-Net configuration (default: 3d_fullres)")
    parser.add_argument("--fold", "-f", default="0", help="fold 0-4 of nnU-Net's 5-fold split, or 'all' (default: 0)")
    parser.add_argument("--trainer", "-tr", default="nnUNetTrainer",
                        help="nnU-Net trainer class (default: nnUNetTrainer); short runs train nnUNetTrainer or "
                             "nnUNetTrainerNoDA through gcmlm's <trainer>_gcmlmShort")
    parser.add_argument("--plans", "-p", default="nnUNetPlans",
                        help="plans identifier, e.g. nnUNetPlans or nnUNetPlans_tiny (default: nnUNetPlans)")
    short = parser.add_argument_group("short runs (train with <trainer>_gcmlmShort)")
    short.add_argument("--epochs", type=int, metavar="N", help="epochs (nnU-Net: 1000)")
    short.add_argument("--iterations-per-epoch", type=int, metavar="N", help="training iterations per epoch (nnU-Net: 250)")
    short.add_argument("--val-iterations", type=int, metavar="N", help="validation iterations per epoch (nnU-Net: 50)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                        help="auto: CUDA if torch sees a GPU, else CPU (default: auto)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads (default as nnU-Net: all CPUs on cpu, 1 on cuda); "
                             "1 is fastest on a shared, oversubscribed machine")
    parser.add_argument("--num-workers", type=int, metavar="N",
                        help="data augmentation processes (nnU-Net's nnUNet_n_proc_DA; 0 runs it in the main process)")
    parser.add_argument("--num-processes", type=int, metavar="N",
                        help="processes for validation export (nnU-Net's nnUNet_def_n_proc; default 8)")
    parser.add_argument("--results", metavar="DIR",
                        help="also keep nnU-Net's results folder here (nnUNet_results layout); default: a temporary folder")
    parser.add_argument("--validation-summary", metavar="JSON", help="copy the fold's validation/summary.json here")


def resolve_trainer(trainer: str, short_run: bool) -> str:
    check_trainer_name(trainer)
    if not short_run:
        return trainer
    if trainer in SHORT_TRAINERS.values():
        return trainer
    if trainer not in SHORT_TRAINERS:
        raise GcmlmError(f"--epochs/--iterations-per-epoch/--val-iterations need a trainer with a settable run "
                         f"length ({', '.join(SHORT_TRAINERS)}); {trainer} cannot be shortened")
    return SHORT_TRAINERS[trainer]


def parse_fold(fold: str) -> int | str:
    if fold == "all":
        return fold
    try:
        return int(fold)
    except ValueError:
        raise GcmlmError(f"--fold must be an integer or 'all', got '{fold}'") from None


def check_preprocessed(folder: Path, plans: str, configuration: str) -> tuple[str, dict, dict]:
    if not folder.is_dir():
        raise GcmlmError("no such preprocessed dataset folder", folder)
    parse_dataset_name(folder.name, folder)
    plans_file = folder / f"{plans}.json"
    if not plans_file.is_file():
        found = sorted(p.stem for p in folder.glob("*.json") if p.stem not in ("dataset", "dataset_fingerprint", "splits_final"))
        raise GcmlmError(f"plans '{plans}' not found (available: {', '.join(found) or 'none'})", folder)
    plans_dict = read_json(plans_file)
    if configuration not in plans_dict.get("configurations", {}):
        raise GcmlmError(f"configuration '{configuration}' is not in plans {plans} "
                         f"(has {', '.join(plans_dict.get('configurations', {}))})", plans_file)
    data = folder / plans_dict["configurations"][configuration].get("data_identifier", f"{plans}_{configuration}")
    if not data.is_dir():
        raise GcmlmError(f"configuration '{configuration}' was not preprocessed (no {data.name}/); run nnunet-plan "
                         f"with --configuration {configuration}", folder)
    return folder.name, plans_dict, read_json(folder / "dataset.json")


def train(args: argparse.Namespace, results: Path, work: Path) -> Path:
    """Train and validate; returns the fold's output folder."""
    short = any(v is not None for v in (args.epochs, args.iterations_per_epoch, args.val_iterations))
    trainer_name = resolve_trainer(args.trainer, short)
    fold = parse_fold(args.fold)
    preprocessed = Path(args.preprocessed)
    name, plans, dataset_json = check_preprocessed(preprocessed, args.plans, args.configuration)
    pre_root = work / "preprocessed"
    stage_dataset_folder(preprocessed, pre_root, name, writable=True)  # nnU-Net may add splits_final.json
    extra = {k: str(v) for k, v in (("nnUNet_n_proc_DA", args.num_workers),
                                    ("nnUNet_def_n_proc", args.num_processes)) if v is not None}
    device = select_device(args.device, args.threads)
    with nnunet_env(preprocessed=pre_root, results=results, **extra), \
            contextlib.redirect_stdout(nnunet_prints_to_log(logging.INFO)):
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        try:
            trainer_class = recursive_find_trainer_class_by_name(trainer_name)
        except RuntimeError:
            raise GcmlmError(f"nnU-Net trainer '{trainer_name}' not found in nnunetv2 or nnUNet_extTrainer") from None
        plans["continue_training"] = False
        trainer = trainer_class(plans=plans, configuration=args.configuration, fold=fold,
                                dataset_json=dataset_json, device=device)
        if short:
            trainer.set_run_length(
                epochs=args.epochs if args.epochs is not None else trainer.num_epochs,
                iterations_per_epoch=args.iterations_per_epoch or trainer.num_iterations_per_epoch,
                val_iterations=args.val_iterations or trainer.num_val_iterations_per_epoch)
        log.info("training %s fold %s with %s (%d epochs x %d iterations) on %s", name, fold, trainer_name,
                 trainer.num_epochs, trainer.num_iterations_per_epoch, device)
        trainer.run_training()
        log.info("validating fold %s", fold)
        trainer.perform_actual_validation(False)
    return Path(trainer.output_folder)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix=".nnunet-train-", dir=out.parent if out.parent.exists() else None) as work:
        work = Path(work)
        results = Path(args.results) if args.results else work / "results"
        results.mkdir(parents=True, exist_ok=True)
        fold_dir = train(args, results, work)
        name = Path(args.preprocessed).name
        trainer_dir = fold_dir.parent
        trainer_name = trainer_dir.name.split("__")[0]
        export_model_zip(results, name, trainer_name, args.plans, args.configuration, [str(args.fold)], out)
        summary = fold_dir / "validation" / "summary.json"
        if args.validation_summary:
            with atomic_file(args.validation_summary) as tmp:
                shutil.copyfile(summary, tmp)
        dice = read_json(summary).get("foreground_mean", {}).get("Dice")
        log.info("wrote %s (validation foreground mean Dice %s)", out, "n/a" if dice is None else f"{dice:.3f}")
    print(os.fspath(out))
    return 0
