"""What the nnU-Net stages share: scoped nnU-Net folders, dataset names, devices and model zips.

nnU-Net v2 finds its folders through the environment variables ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` (read each time they are used) and external
trainers through ``nnUNet_extTrainer``. The stages set them only for the duration of a call
(:func:`nnunet_env`), so a user's own settings are never changed and never leak into a stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from gcmlm.common.errors import GcmlmError

ENV_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
# The trainers' package folder, which holds the trainers (in __init__) and one re-export module:
# nnU-Net imports every module in an nnUNet_extTrainer folder as a top-level module, so it must not
# be a folder with other modules (radiology's own once shadowed PyRadiomics).
EXT_TRAINER_DIR = Path(__file__).resolve().parent / "nnunet_trainers"

V1_TRAINERS = {"nnUNetTrainerV2": "nnUNetTrainer", "nnUNetTrainerV2_5epochs": "nnUNetTrainer_5epochs"}
CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")
DATASET_NAME = re.compile(r"^Dataset(\d{3})_([A-Za-z0-9][A-Za-z0-9_\-]*)$")
CT_SUFFIX = "_0000"
FILE_ENDING = ".nii.gz"


@contextlib.contextmanager
def nnunet_env(raw: str | os.PathLike | None = None, preprocessed: str | os.PathLike | None = None,
               results: str | os.PathLike | None = None, **extra: str) -> Iterator[None]:
    """Set nnU-Net's folder variables (and gcmlm's trainer folder) for the block, then restore.

    Folders left as None are unset inside the block, so nnU-Net never reads or writes a user's
    own nnUNet_* folders by accident. ``extra`` sets further variables (e.g. nnUNet_n_proc_DA).
    """
    wanted = dict(zip(ENV_VARS, (raw, preprocessed, results), strict=True))
    ext = os.pathsep.join(p for p in (str(EXT_TRAINER_DIR), os.environ.get("nnUNet_extTrainer")) if p)
    updates = {**{k: None if v is None else os.fspath(v) for k, v in wanted.items()},
               "nnUNet_extTrainer": ext, **extra}
    saved = {k: os.environ.get(k) for k in updates}
    try:
        for key, value in updates.items():
            _set_env(key, value)
        yield
    finally:
        for key, value in saved.items():
            _set_env(key, value)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def dataset_name(dataset_id: int | str, name: str) -> str:
    """``DatasetNNN_Name`` as nnU-Net v2 spells it; the ID has three digits (1-999)."""
    try:
        number = int(dataset_id)
    except (TypeError, ValueError):
        raise GcmlmError(f"dataset ID must be an integer 1-999, got '{dataset_id}'") from None
    if not 1 <= number <= 999:
        raise GcmlmError(f"dataset ID must be 1-999 (nnU-Net uses three digits), got {number}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name or ""):
        raise GcmlmError(f"dataset name '{name}' must be letters, digits, '_' or '-'")
    return f"Dataset{number:03d}_{name}"


def parse_dataset_name(text: str, source: str | os.PathLike | None = None) -> tuple[int, str]:
    """``Dataset501_Stomach`` -> (501, 'Stomach'); anything else is an error naming ``source``."""
    match = DATASET_NAME.match(text)
    if not match:
        raise GcmlmError(f"'{text}' is not an nnU-Net v2 dataset name (DatasetNNN_Name)", source)
    return int(match.group(1)), match.group(2)


def check_trainer_name(name: str) -> str:
    """nnU-Net v1 trainer names get a pointer to their v2 spelling instead of a class lookup error."""
    if name in V1_TRAINERS or name.startswith("nnUNetTrainerV2"):
        v2 = V1_TRAINERS.get(name, "nnUNetTrainer")
        raise GcmlmError(f"{name} is nnU-Net v1's name; in v2 use {v2}")
    return name


def case_id_from_image(path: str | os.PathLike) -> str:
    """Case identifier from an image file name: extension and nnU-Net's ``_0000`` suffix removed."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return name[: -len(CT_SUFFIX)] if name.endswith(CT_SUFFIX) else name


def select_device(choice: str = "auto", threads: int | None = None):
    """torch.device for ``auto|cpu|cuda|mps``, with nnU-Net's thread settings unless ``threads`` is given."""
    import torch

    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise GcmlmError("--device cuda was requested but torch sees no CUDA GPU (use --device auto or cpu)")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise GcmlmError("--device mps was requested but this torch build has no MPS device")
    if choice == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)  # as nnUNetv2_train/predict do on CPU
    elif choice == "cuda":
        torch.set_num_threads(1)  # nnU-Net: more threads do not help on GPU
    if threads:
        torch.set_num_threads(threads)
    return torch.device(choice)


# ---- trained models: results folders and model zips ------------------------------------------

def model_folders(root: str | os.PathLike) -> list[Path]:
    """Trainer output folders (``Trainer__Plans__config`` holding plans.json, dataset.json, fold_*) under root."""
    root = Path(root)
    found = [p.parent for p in sorted(root.rglob("plans.json"))
             if (p.parent / "dataset.json").is_file() and any(p.parent.glob("fold_*"))]
    return found


def checkpoint_folds(model_dir: Path, checkpoint: str) -> list[str]:
    return sorted(p.parent.name[len("fold_"):] for p in model_dir.glob(f"fold_*/{checkpoint}"))


@contextlib.contextmanager
def open_model(model: str | os.PathLike, configuration: str | None = None) -> Iterator[Path]:
    """Yield the trainer output folder of a model zip (extracted to a temporary folder) or results folder.

    A zip or folder holding several configurations needs ``configuration`` to pick one.
    """
    model = Path(model)
    if not model.exists():
        raise GcmlmError("no such model zip or results folder", model)
    with contextlib.ExitStack() as stack:
        if model.is_file():
            if not zipfile.is_zipfile(model):
                raise GcmlmError("not a zip file (expected an nnU-Net model zip from nnUNetv2_export_model_to_zip)", model)
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gcmlm-nnunet-model-")))
            with zipfile.ZipFile(model) as archive:
                _safe_extract(archive, root, model)
        else:
            root = model
        candidates = model_folders(root)
        if configuration:
            candidates = [c for c in candidates if c.name.endswith(f"__{configuration}")]
        if not candidates:
            what = f" for configuration {configuration}" if configuration else ""
            raise GcmlmError(f"no trained nnU-Net model{what} (a folder with plans.json, dataset.json and fold_*/)", model)
        if len(candidates) > 1:
            names = ", ".join(c.name for c in candidates)
            raise GcmlmError(f"holds several models ({names}); choose one with --configuration", model)
        yield candidates[0]


def _safe_extract(archive: zipfile.ZipFile, root: Path, source: Path) -> None:
    for member in archive.namelist():
        target = (root / member).resolve()
        if not target.is_relative_to(root.resolve()):
            raise GcmlmError(f"zip member '{member}' points outside the archive", source)
    archive.extractall(root)


def export_model_zip(results: Path, dataset: str, trainer: str, plans: str, configuration: str,
                     folds: list[str], out: Path) -> None:
    """Write nnU-Net's model zip (nnUNetv2_export_model_to_zip layout) with nnU-Net's own exporter."""
    from gcmlm.common.atomic import atomic_file

    with nnunet_env(results=results), contextlib.redirect_stdout(_LogWriter()):
        from nnunetv2.model_sharing.model_export import export_pretrained_model

        with atomic_file(out) as tmp:
            export_pretrained_model(dataset, str(tmp), configurations=(configuration,), trainer=trainer,
                                    plans_identifier=plans, folds=tuple(_fold_value(f) for f in folds),
                                    strict=True)


def _fold_value(fold: str | int):
    return fold if fold == "all" else int(fold)


class _LogWriter:
    """A stdout stand-in that sends nnU-Net's prints to gcmlm's log (stderr), keeping stdout clean."""

    def __init__(self, level: int = 10):  # logging.DEBUG: nnU-Net's chatter only with -v
        import logging

        self.log = logging.getLogger("gcmlm.nnunet")
        self.level = level
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                self.log.log(self.level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        pass


nnunet_prints_to_log = _LogWriter


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GcmlmError("no such file", path) from None
    except json.JSONDecodeError as exc:
        raise GcmlmError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path) from None


def stage_dataset_folder(source: Path, root: Path, name: str, writable: bool = False) -> Path:
    """Make ``root/name`` point at ``source``, as nnU-Net expects datasets under a variable's folder.

    ``writable`` makes a real folder of per-entry links, so nnU-Net can add files (e.g.
    splits_final.json) without touching ``source``, which may be read-only (CWL inputs are).
    """
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if not writable:
        target.symlink_to(source.resolve(), target_is_directory=True)
        return target
    target.mkdir()
    for entry in source.iterdir():
        (target / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return target


def copy_tree_contents(source: Path, dest: Path) -> None:
    for entry in source.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, symlinks=False)
        else:
            shutil.copy2(entry, dest / entry.name)
