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
import warnings
from pathlib import Path

from gcmlm.common.atomic import atomic_file, check_outputs
from gcmlm.common.errors import GcmlmError, one_line, require_dir
from gcmlm.radiology.core.nnunet import (
    CONFIGURATIONS,
    DEFAULT_DEVICE,
    DEVICES,
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
# Defaults of train_fold, which the command line shows and uses too.
DEFAULT_CONFIGURATION = "3d_fullres"
DEFAULT_FOLD = "0"
DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_PLANS = "nnUNetPlans"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preprocessed", required=True, metavar="DIR",
                        help="preprocessed dataset folder DatasetNNN_Name (from nnunet-plan or nnUNetv2_plan_and_preprocess)")
    parser.add_argument("--out", required=True, metavar="ZIP", help="model zip to write (nnUNetv2_export_model_to_zip format)")
    parser.add_argument("--configuration", "-c", default=DEFAULT_CONFIGURATION, choices=CONFIGURATIONS,
                        help=f"nnU-Net configuration (default: {DEFAULT_CONFIGURATION})")
    parser.add_argument("--fold", "-f", default=DEFAULT_FOLD,
                        help=f"fold 0-4 of nnU-Net's 5-fold split, or 'all' (default: {DEFAULT_FOLD})")
    parser.add_argument("--trainer", "-tr", default=DEFAULT_TRAINER,
                        help=f"nnU-Net trainer class (default: {DEFAULT_TRAINER}); short runs train nnUNetTrainer or "
                             "nnUNetTrainerNoDA through gcmlm's <trainer>_gcmlmShort")
    parser.add_argument("--plans", "-p", default=DEFAULT_PLANS,
                        help=f"plans identifier, e.g. nnUNetPlans or nnUNetPlans_tiny (default: {DEFAULT_PLANS})")
    short = parser.add_argument_group("short runs (train with <trainer>_gcmlmShort)")
    short.add_argument("--epochs", type=int, metavar="N", help="epochs (nnU-Net: 1000)")
    short.add_argument("--iterations-per-epoch", type=int, metavar="N", help="training iterations per epoch (nnU-Net: 250)")
    short.add_argument("--val-iterations", type=int, metavar="N", help="validation iterations per epoch (nnU-Net: 50)")
    parser.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE,
                        help=f"auto: CUDA if torch sees a GPU, else CPU (default: {DEFAULT_DEVICE})")
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
    """The trainer class to run: ``trainer``, or its ``_gcmlmShort`` variant for a short run."""
    check_trainer_name(trainer)
    if not short_run:
        return trainer
    if trainer in SHORT_TRAINERS.values():
        return trainer
    if trainer not in SHORT_TRAINERS:
        raise GcmlmError(f"--epochs/--iterations-per-epoch/--val-iterations need a trainer with a settable run "
                         f"length ({', '.join(SHORT_TRAINERS)}); {trainer} cannot be shortened")
    return SHORT_TRAINERS[trainer]


def parse_fold(fold: int | str) -> int | str:
    """A fold number, or 'all' (train on every case)."""
    if fold == "all":
        return fold
    try:
        return int(fold)
    except ValueError:
        raise GcmlmError(f"--fold must be an integer or 'all', got '{fold}'") from None


def check_run_options(run_length: tuple[int | None, int | None, int | None], threads: int | None,
                      num_workers: int | None, num_processes: int | None) -> None:
    """Refuse counts nnU-Net would fail on (or train forever with), before anything is read."""
    epochs, iterations, val_iterations = run_length
    minimums = (("--epochs", epochs, 1), ("--iterations-per-epoch", iterations, 1),
                ("--val-iterations", val_iterations, 1), ("--threads", threads, 1),
                ("--num-workers", num_workers, 0), ("--num-processes", num_processes, 1))
    for flag, value, least in minimums:
        if value is not None and value < least:
            raise GcmlmError(f"{flag} must be at least {least}, got {value}")


def check_preprocessed(folder: Path, plans: str, configuration: str) -> tuple[str, dict, dict]:
    """(dataset name, plans, dataset.json) of a preprocessed dataset that holds ``configuration``'s data."""
    require_dir(folder, "preprocessed dataset folder")
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


def train_fold(preprocessed: str | os.PathLike, out_zip: str | os.PathLike, *,
               configuration: str = DEFAULT_CONFIGURATION, fold: int | str = DEFAULT_FOLD,
               trainer: str = DEFAULT_TRAINER, plans: str = DEFAULT_PLANS, epochs: int | None = None,
               iterations_per_epoch: int | None = None, val_iterations: int | None = None,
               device: str = DEFAULT_DEVICE, threads: int | None = None, num_workers: int | None = None,
               num_processes: int | None = None, results: str | os.PathLike | None = None,
               validation_summary: str | os.PathLike | None = None) -> Path:
    """Train and validate one fold, export nnU-Net's model zip to ``out_zip``; returns ``out_zip``.

    ``preprocessed``: a ``DatasetNNN_Name`` folder from nnunet-plan (never modified).
    ``fold``: 0-4 or 'all'; ``trainer``: nnU-Net trainer class; ``plans``: plans identifier.
    ``epochs``, ``iterations_per_epoch``, ``val_iterations``: a short run (None: nnU-Net's).
    ``device``: one of :data:`DEVICES`; ``threads``: torch CPU threads; ``num_workers``: data
    augmentation processes; ``num_processes``: validation export processes.
    ``results``: keep nnU-Net's results folder there (default: a temporary folder);
    ``validation_summary``: copy the fold's validation summary.json there.
    """
    out = Path(out_zip)
    check_run_options((epochs, iterations_per_epoch, val_iterations), threads, num_workers, num_processes)
    check_outputs(files=[out, validation_summary], inputs=[preprocessed])
    check_outputs(dirs=[results])  # nnU-Net writes into it; never replaced
    parse_fold(fold)
    resolve_trainer(trainer, any(v is not None for v in (epochs, iterations_per_epoch, val_iterations)))
    check_preprocessed(Path(preprocessed), plans, configuration)
    with tempfile.TemporaryDirectory(prefix=".nnunet-train-", dir=out.parent if out.parent.exists() else None) as work:
        work = Path(work)
        results = Path(results) if results else work / "results"
        results.mkdir(parents=True, exist_ok=True)
        fold_dir = _train(Path(preprocessed), results, work, configuration=configuration, fold=fold,
                          trainer=trainer, plans=plans, run_length=(epochs, iterations_per_epoch, val_iterations),
                          device=device, threads=threads, num_workers=num_workers, num_processes=num_processes)
        trainer_name = fold_dir.parent.name.split("__")[0]
        export_model_zip(results, Path(preprocessed).name, trainer_name, plans, configuration, [str(fold)], out)
        summary = fold_dir / "validation" / "summary.json"
        if validation_summary:
            with atomic_file(validation_summary) as tmp:
                shutil.copyfile(summary, tmp)
        dice = read_json(summary).get("foreground_mean", {}).get("Dice")
        log.info("wrote %s (validation foreground mean Dice %s)", out, "n/a" if dice is None else f"{dice:.3f}")
    return out


def _train(preprocessed: Path, results: Path, work: Path, *, configuration: str, fold: int | str, trainer: str,
           plans: str, run_length: tuple[int | None, int | None, int | None], device: str, threads: int | None,
           num_workers: int | None, num_processes: int | None) -> Path:
    """Train and validate in nnU-Net's results folder ``results``; returns the fold's output folder."""
    epochs, iterations_per_epoch, val_iterations = run_length
    short = any(v is not None for v in run_length)
    trainer_name = resolve_trainer(trainer, short)
    fold = parse_fold(fold)
    name, plans_dict, dataset_json = check_preprocessed(preprocessed, plans, configuration)
    pre_root = work / "preprocessed"
    stage_dataset_folder(preprocessed, pre_root, name, writable=True)  # nnU-Net may add splits_final.json
    extra = {k: str(v) for k, v in (("nnUNet_n_proc_DA", num_workers),
                                    ("nnUNet_def_n_proc", num_processes)) if v is not None}
    torch_device = select_device(device, threads)
    with nnunet_env(preprocessed=pre_root, results=results, **extra), \
            contextlib.redirect_stdout(nnunet_prints_to_log(logging.INFO)):
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        try:
            trainer_class = recursive_find_trainer_class_by_name(trainer_name)
        except RuntimeError:
            raise GcmlmError(f"nnU-Net trainer '{trainer_name}' not found in nnunetv2 or nnUNet_extTrainer") from None
        plans_dict["continue_training"] = False
        nnunet_trainer = _make_trainer(trainer_class, preprocessed / f"{plans}.json", plans=plans_dict,
                                       configuration=configuration, fold=fold, dataset_json=dataset_json,
                                       device=torch_device)
        if short:
            nnunet_trainer.set_run_length(
                epochs=epochs if epochs is not None else nnunet_trainer.num_epochs,
                iterations_per_epoch=iterations_per_epoch or nnunet_trainer.num_iterations_per_epoch,
                val_iterations=val_iterations or nnunet_trainer.num_val_iterations_per_epoch)
        log.info("training %s fold %s with %s (%d epochs x %d iterations) on %s", name, fold, trainer_name,
                 nnunet_trainer.num_epochs, nnunet_trainer.num_iterations_per_epoch, torch_device)
        nnunet_trainer.run_training()
        log.info("validating fold %s", fold)
        nnunet_trainer.perform_actual_validation(False)
    return Path(nnunet_trainer.output_folder)


def _make_trainer(trainer_class, plans_file: Path, **kwargs):
    """nnU-Net's trainer; plans it cannot use are one line naming the plans file, not a KeyError.

    Its warnings (e.g. about an old plans format) are logged once it is built, not printed on stderr.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer = trainer_class(**kwargs)
        except (KeyError, TypeError, ValueError, AssertionError, AttributeError, IndexError) as exc:
            raise GcmlmError(f"nnU-Net cannot use these plans ({type(exc).__name__}: {one_line(exc)})",
                             plans_file) from None
    for warning in caught:
        log.warning("nnU-Net: %s", warning.message)
    return trainer


def run(args: argparse.Namespace) -> int:
    out = train_fold(args.preprocessed, args.out, configuration=args.configuration, fold=args.fold,
                     trainer=args.trainer, plans=args.plans, epochs=args.epochs,
                     iterations_per_epoch=args.iterations_per_epoch, val_iterations=args.val_iterations,
                     device=args.device, threads=args.threads, num_workers=args.num_workers,
                     num_processes=args.num_processes, results=args.results,
                     validation_summary=args.validation_summary)
    print(os.fspath(out))
    return 0
