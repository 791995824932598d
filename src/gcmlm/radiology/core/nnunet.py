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
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from gcmlm.common.errors import GcmlmError, one_line

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


DEVICES = ("auto", "cpu", "cuda", "mps")  # the choices select_device understands
DEFAULT_DEVICE = "auto"


def select_device(choice: str = DEFAULT_DEVICE, threads: int | None = None):
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
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gcmlm-nnunet-model-")))
            with open_zip(model) as archive:
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


# A model zip is untrusted input: bound what extraction may write (nnU-Net's own zips of a few folds
# are well below this), and refuse members that could land outside the extraction folder.
MAX_UNPACKED_BYTES = 20 * 1024**3
MAX_MEMBERS = 10_000


@contextlib.contextmanager
def open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    """The model zip at ``path``; not a zip, or a truncated one, is a one-line error."""
    if not zipfile.is_zipfile(path):
        raise GcmlmError("not a zip file (expected an nnU-Net model zip from nnUNetv2_export_model_to_zip)", path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise GcmlmError(f"not a readable zip file ({one_line(exc)})", path) from None
    with archive:
        yield archive


def _safe_extract(archive: zipfile.ZipFile, root: Path, source: Path) -> None:
    """Extract ``archive`` into ``root`` after refusing anything that could escape it or fill the disk.

    Refused: absolute names, ``..`` parts, symbolic links (zip external attributes), encrypted
    members, more than :data:`MAX_MEMBERS` members or more than :data:`MAX_UNPACKED_BYTES` unpacked.
    A corrupt member (bad CRC, truncated data) is a one-line error too.
    """
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise GcmlmError(f"zip holds {len(members)} members (at most {MAX_MEMBERS}); not an nnU-Net model zip", source)
    total = 0
    for info in members:
        _check_member(info, source)
        total += info.file_size
    if total > MAX_UNPACKED_BYTES:
        raise GcmlmError(f"zip would unpack to {total / 1024**3:.1f} GiB (at most "
                         f"{MAX_UNPACKED_BYTES / 1024**3:.0f}); not an nnU-Net model zip", source)
    try:
        archive.extractall(root)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as exc:
        raise GcmlmError(f"cannot unpack the model zip ({one_line(exc)})", source) from None


def _check_member(info: zipfile.ZipInfo, source: Path) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise GcmlmError(f"zip member '{name}' points outside the archive", source)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise GcmlmError(f"zip member '{name}' is a symbolic link; a model zip holds plain files only", source)
    if info.flag_bits & 0x1:
        raise GcmlmError(f"zip member '{name}' is encrypted", source)


# Modules nnU-Net may import by the names in plans.json (it calls pydoc.locate on them, then the
# class): the network architectures and torch's layers, nothing a crafted plans file could abuse.
ARCHITECTURE_MODULES = ("dynamic_network_architectures.",)
ARCHITECTURE_IMPORT_MODULES = ("torch.nn.",)


def verify_plans(model_dir: Path) -> None:
    """Refuse a model's plans.json whose architecture names code outside the network packages."""
    plans_file = model_dir / "plans.json"
    plans = read_json(plans_file)
    configurations = plans.get("configurations") if isinstance(plans, dict) else None
    if not isinstance(configurations, dict):
        raise GcmlmError("not nnU-Net plans (no configurations)", plans_file)
    for name, config in configurations.items():
        architecture = config.get("architecture") if isinstance(config, dict) else None
        if not isinstance(architecture, dict):
            continue  # a configuration that inherits its architecture from another
        names = [(architecture.get("network_class_name"), ARCHITECTURE_MODULES)]
        kwargs = architecture.get("arch_kwargs") or {}
        names += [(kwargs.get(key), ARCHITECTURE_IMPORT_MODULES) for key in architecture.get("_kw_requires_import", [])
                  if isinstance(kwargs, dict) and kwargs.get(key) is not None]
        for value, allowed in names:
            if not isinstance(value, str) or not value.startswith(allowed):
                raise GcmlmError(f"configuration {name} names the class {value!r}, outside "
                                 f"{', '.join(m.rstrip('.') for m in allowed)}; refusing to import it", plans_file)


def _checkpoint_data_types() -> list:
    """Besides tensors and plain containers, nnU-Net's checkpoints hold numpy scalars (its logged
    metrics): their constructors rebuild data only, so they are allowed."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar  # numpy 2
    except ImportError:
        from numpy.core.multiarray import scalar  # numpy 1
    dtypes = [getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType",
                                                     "BoolDType") if hasattr(np, "dtypes")]
    return [scalar, np.dtype, *dtypes]


def verify_checkpoints(model_dir: Path, folds: list[str], checkpoint: str) -> None:
    """Refuse a checkpoint that is more than data before nnU-Net unpickles it without restriction.

    nnU-Net loads checkpoints with ``torch.load(weights_only=False)``, which runs any code pickled
    into the file. Loading first with ``weights_only=True`` (tensors, numbers, strings and plain
    containers only) refuses such a file without running anything; nnU-Net's own checkpoints pass.
    """
    import pickle

    import torch

    for fold in folds:
        path = model_dir / f"fold_{fold}" / checkpoint
        try:
            with warnings.catch_warnings(), torch.serialization.safe_globals(_checkpoint_data_types()):
                warnings.simplefilter("ignore")
                data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise GcmlmError(f"fold_{fold}/{checkpoint} holds more than weights (pickled Python objects "
                             "that loading would run); refusing an untrusted checkpoint", model_dir) from None
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
            raise GcmlmError(f"fold_{fold}/{checkpoint} is not a readable checkpoint ({one_line(exc)})",
                             model_dir) from None
        missing = [k for k in ("network_weights", "trainer_name", "init_args") if not isinstance(data, dict) or k not in data]
        if missing:
            raise GcmlmError(f"fold_{fold}/{checkpoint} is not an nnU-Net checkpoint (no {', '.join(missing)})",
                             model_dir)


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
