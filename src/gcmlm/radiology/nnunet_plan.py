"""nnunet-plan: nnUNetv2_plan_and_preprocess for one raw dataset, through nnU-Net's Python API.

Extracts the dataset fingerprint (after nnU-Net's own integrity check), plans the experiment and
preprocesses the requested configurations into ``OUT/DatasetNNN_Name``, the folder nnU-Net reads
from ``nnUNet_preprocessed``. ``--tiny`` adds a plans variant named ``<plans>_tiny`` (32^3 patch,
few features, batch size 2, spacing coarsened so the median image spans at most 1.5 patches per
axis) derived from the generated plans, for tests and demos on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gcmlm.common.atomic import atomic_dir, check_outputs
from gcmlm.common.errors import GcmlmError, one_line, require_dir
from gcmlm.radiology.core.nnunet import (
    CONFIGURATIONS,
    nnunet_env,
    nnunet_prints_to_log,
    parse_dataset_name,
    read_json,
    stage_dataset_folder,
)

log = logging.getLogger("gcmlm")

TINY_SUFFIX = "_tiny"
TINY_PATCH = 32
TINY_FEATURES = (8, 16, 32, 32)  # one entry per resolution stage; 32 -> 16 -> 8 -> 4 voxels
TINY_BATCH = 2
TINY_MAX_PATCHES = 1.5  # coarsen the spacing until the median image spans at most this many patches per axis
# Defaults of plan_and_preprocess, which the command line shows and uses too.
DEFAULT_CONFIGURATIONS = ("3d_fullres",)
DEFAULT_PLANNER = "ExperimentPlanner"
DEFAULT_NUM_PROCESSES = min(8, os.cpu_count() or 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", required=True, metavar="DIR",
                        help="raw dataset folder DatasetNNN_Name (imagesTr, labelsTr, dataset.json)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="nnUNet_preprocessed folder; writes DIR/DatasetNNN_Name (replacing it)")
    parser.add_argument("--configuration", "-c", nargs="+", default=list(DEFAULT_CONFIGURATIONS), choices=CONFIGURATIONS,
                        help=f"configuration(s) to preprocess (default: {' '.join(DEFAULT_CONFIGURATIONS)})")
    parser.add_argument("--planner", default=DEFAULT_PLANNER, metavar="CLASS",
                        help=f"nnU-Net experiment planner, e.g. nnUNetPlannerResEncM (default: {DEFAULT_PLANNER})")
    parser.add_argument("--gpu-memory-target", type=float, metavar="GB",
                        help="GPU memory the planner targets (nnU-Net's -gpu_memory_target)")
    parser.add_argument("--tiny", action="store_true",
                        help=f"write and preprocess a tiny plans variant '<plans>{TINY_SUFFIX}' instead "
                             f"({TINY_PATCH}^3 patch, features {list(TINY_FEATURES)}, batch {TINY_BATCH}, coarse spacing) "
                             "for tests and demos on a CPU")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip nnU-Net's dataset integrity check (--verify_dataset_integrity is on by default)")
    parser.add_argument("--num-processes", "-np", type=int, default=DEFAULT_NUM_PROCESSES, metavar="N",
                        help="processes for fingerprinting and preprocessing (default: min(8, CPUs))")


def tiny_plans(plans: dict, configurations: list[str]) -> dict:
    """A copy of ``plans`` whose configurations train in seconds: small patch, network and batch."""
    tiny = copy.deepcopy(plans)
    tiny["plans_name"] = plans["plans_name"] + TINY_SUFFIX
    for name in configurations:
        config = tiny["configurations"].get(name)
        if config is None or "architecture" not in config:
            continue  # e.g. 3d_lowres is not planned for small images
        ndim = len(config["patch_size"])
        n_stages = len(TINY_FEATURES)
        spacing = np.asarray(config["spacing"], dtype=float)
        extent_mm = np.asarray(config["median_image_size_in_voxels"], dtype=float) * spacing
        coarse = np.maximum(spacing, extent_mm / (TINY_MAX_PATCHES * TINY_PATCH))
        config["spacing"] = [float(v) for v in coarse]
        config["median_image_size_in_voxels"] = [float(v) for v in np.round(extent_mm / coarse)]
        # other spacing, other preprocessed data: nnU-Net names the data folder after the plans
        config["data_identifier"] = f"{tiny['plans_name']}_{name}"
        config["patch_size"] = [TINY_PATCH] * ndim
        config["batch_size"] = TINY_BATCH
        kwargs = config["architecture"]["arch_kwargs"]
        kwargs.update({
            "n_stages": n_stages,
            "features_per_stage": list(TINY_FEATURES),
            "kernel_sizes": [[3] * ndim for _ in range(n_stages)],
            "strides": [[1] * ndim] + [[2] * ndim for _ in range(n_stages - 1)],
            "n_conv_per_stage": [1] * n_stages,
            "n_conv_per_stage_decoder": [1] * (n_stages - 1),
        })
    return tiny


def check_plan_options(configurations: Sequence[str], num_processes: int, gpu_memory_target: float | None) -> None:
    """Refuse option values nnU-Net would fail on deep inside, before any work."""
    unknown = [c for c in configurations if c not in CONFIGURATIONS]
    if unknown or not configurations:
        raise GcmlmError(f"--configuration must be among {', '.join(CONFIGURATIONS)}, got {', '.join(unknown) or 'none'}")
    if num_processes < 1:
        raise GcmlmError(f"--num-processes must be at least 1, got {num_processes}")
    if gpu_memory_target is not None and not gpu_memory_target > 0:  # also refuses NaN
        raise GcmlmError(f"--gpu-memory-target must be positive, got {gpu_memory_target}")


def check_raw_dataset(raw: Path) -> dict:
    """dataset.json of a raw dataset, checked for what planning needs; one line naming the file otherwise."""
    path = raw / "dataset.json"
    if not path.is_file():
        raise GcmlmError("not an nnU-Net raw dataset folder (no dataset.json)", raw)
    dataset = read_json(path)
    if not isinstance(dataset, dict):
        raise GcmlmError("dataset.json must hold a JSON object", path)
    missing = [key for key in ("channel_names", "labels", "numTraining", "file_ending") if key not in dataset]
    if missing:
        raise GcmlmError(f"dataset.json lacks {', '.join(missing)} (nnU-Net v2 format)", path)
    if not isinstance(dataset["numTraining"], int) or dataset["numTraining"] < 1:
        raise GcmlmError(f"numTraining must be a positive integer, got {dataset['numTraining']!r}", path)
    if not isinstance(dataset["labels"], dict) or dataset["labels"].get("background") != 0:
        raise GcmlmError("labels must map names to values, with background=0", path)
    if not (raw / "imagesTr").is_dir() or not (raw / "labelsTr").is_dir():
        raise GcmlmError("not an nnU-Net raw dataset folder (no imagesTr/ or labelsTr/)", raw)
    return dataset


def check_planner(planner: str) -> None:
    """An unknown planner class is one line here, not a TypeError after fingerprinting."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    with contextlib.redirect_stdout(nnunet_prints_to_log()):
        found = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), planner,
                                            "nnunetv2.experiment_planning")
    if found is None:
        raise GcmlmError(f"--planner {planner}: no such nnU-Net experiment planner class")


def plan_and_preprocess(raw: str | os.PathLike, out_root: str | os.PathLike,
                        configurations: Sequence[str] = DEFAULT_CONFIGURATIONS, planner: str = DEFAULT_PLANNER,
                        tiny: bool = False, verify: bool = True, num_processes: int = DEFAULT_NUM_PROCESSES,
                        gpu_memory_target: float | None = None) -> tuple[Path, str]:
    """Run fingerprint, plan and preprocess; returns (OUT/DatasetNNN_Name, plans identifier used).

    ``raw``: a raw dataset folder ``DatasetNNN_Name``; ``out_root``: the nnUNet_preprocessed folder the
    result goes to (replacing ``out_root/DatasetNNN_Name``). ``configurations``: nnU-Net configurations
    to preprocess; ``planner``: experiment planner class; ``tiny``: plan and preprocess the tiny variant
    (see :func:`tiny_plans`); ``verify``: nnU-Net's dataset integrity check; ``gpu_memory_target``: GB.
    """
    raw, out_root, configurations = Path(raw), Path(out_root), list(configurations)
    check_plan_options(configurations, num_processes, gpu_memory_target)
    require_dir(raw, "raw dataset folder")
    dataset_id, _ = parse_dataset_name(raw.name, raw)
    name = raw.name
    check_outputs(dirs=[out_root])
    check_outputs(dirs=[out_root / name], inputs=[raw])
    check_raw_dataset(raw)
    check_planner(planner)
    with tempfile.TemporaryDirectory(prefix="gcmlm-nnunet-plan-") as work:
        work = Path(work)
        raw_root, pre_root = work / "raw", work / "preprocessed"
        stage_dataset_folder(raw, raw_root, name)
        pre_root.mkdir()
        with nnunet_env(raw=raw_root, preprocessed=pre_root), contextlib.redirect_stdout(nnunet_prints_to_log()):
            from nnunetv2.experiment_planning.plan_and_preprocess_api import (
                extract_fingerprints,
                plan_experiments,
                preprocess,
            )

            log.info("%s: fingerprint%s", name, " and integrity check" if verify else "")
            try:
                extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=verify,
                                     clean=True, verbose=False, show_progress_bar=False)
            except (AssertionError, RuntimeError) as exc:
                raise GcmlmError(f"nnU-Net dataset integrity check failed: {one_line(exc)}", raw) from None
            log.info("%s: planning with %s", name, planner)
            plans_id = plan_experiments([dataset_id], planner, gpu_memory_target_in_gb=gpu_memory_target)
            if tiny:
                plans_file = pre_root / name / f"{plans_id}.json"
                small = tiny_plans(read_json(plans_file), configurations)
                plans_id = small["plans_name"]
                (pre_root / name / f"{plans_id}.json").write_text(json.dumps(small, indent=4) + "\n")
            log.info("%s: preprocessing %s with plans %s", name, ", ".join(configurations), plans_id)
            preprocess([dataset_id], plans_id, configurations=configurations,
                       num_processes=[num_processes] * len(configurations), verbose=False, show_progress_bar=False)
        dest = out_root / name
        with atomic_dir(dest) as tmp:
            tmp.rmdir()
            shutil.move(pre_root / name, tmp)  # the work folder may be on another file system
    return dest, plans_id


def run(args: argparse.Namespace) -> int:
    dest, plans_id = plan_and_preprocess(args.raw, args.out, args.configuration, planner=args.planner, tiny=args.tiny,
                                         verify=args.verify, num_processes=args.num_processes,
                                         gpu_memory_target=args.gpu_memory_target)
    log.info("wrote %s (plans %s)", dest, plans_id)
    print(dest)
    return 0
