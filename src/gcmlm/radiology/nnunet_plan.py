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
import tempfile
from pathlib import Path

import numpy as np

from gcmlm.common.atomic import atomic_dir
from gcmlm.common.errors import GcmlmError, one_line
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", required=True, metavar="DIR",
                        help="raw dataset folder DatasetNNN_Name (imagesTr, labelsTr, dataset.json)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="nnUNet_preprocessed folder; writes DIR/DatasetNNN_Name (replacing it)")
    parser.add_argument("--configuration", "-c", nargs="+", default=["3d_fullres"], choices=CONFIGURATIONS,
                        help="configuration(s) to preprocess (default: 3d_fullres)")
    parser.add_argument("--planner", default="ExperimentPlanner", metavar="CLASS",
                        help="nnU-Net experiment planner, e.g. nnUNetPlannerResEncM (default: ExperimentPlanner)")
    parser.add_argument("--gpu-memory-target", type=float, metavar="GB",
                        help="GPU memory the planner targets (nnU-Net's -gpu_memory_target)")
    parser.add_argument("--tiny", action="store_true",
                        help=f"write and preprocess a tiny plans variant '<plans>{TINY_SUFFIX}' instead "
                             f"({TINY_PATCH}^3 patch, features {list(TINY_FEATURES)}, batch {TINY_BATCH}, coarse spacing) "
                             "for tests and demos on a CPU")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip nnU-Net's dataset integrity check (--verify_dataset_integrity is on by default)")
    parser.add_argument("--num-processes", "-np", type=int, default=min(8, os.cpu_count() or 1), metavar="N",
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


def plan_and_preprocess(raw: Path, out_root: Path, configurations: list[str], planner: str = "ExperimentPlanner",
                        tiny: bool = False, verify: bool = True, num_processes: int = 2,
                        gpu_memory_target: float | None = None) -> tuple[Path, str]:
    """Run fingerprint, plan and preprocess; returns (OUT/DatasetNNN_Name, plans identifier used)."""
    if not (raw / "dataset.json").is_file():
        raise GcmlmError("not an nnU-Net raw dataset folder (no dataset.json)", raw)
    dataset_id, _ = parse_dataset_name(raw.name, raw)
    name = raw.name
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".nnunet-plan-", dir=out_root) as work:
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
            os.replace(pre_root / name, tmp)
    return dest, plans_id


def run(args: argparse.Namespace) -> int:
    dest, plans_id = plan_and_preprocess(Path(args.raw), Path(args.out), args.configuration, args.planner,
                                         args.tiny, args.verify, args.num_processes, args.gpu_memory_target)
    log.info("wrote %s (plans %s)", dest, plans_id)
    print(dest)
    return 0
