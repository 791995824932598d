"""nnunet-predict against nnUNetv2_predict, side by side on the same model zip and CT images.

Three runs with the same folds, step size, TTA, checkpoint, device and process counts:

  ours      gcmlm nnunet-predict --model ZIP --images ALL      (one process, model loaded once)
  cli_all   nnUNetv2_predict -i FOLDER_WITH_ALL ...            (one call for all cases)
  cli_each  nnUNetv2_predict -i FOLDER_WITH_ONE ... per case   (one call per case)

The zip is installed for the CLI with nnUNetv2_install_pretrained_model_from_zip (not timed); our
time includes unpacking the zip. Prints wall times, the ratios and whether all masks are voxel-
identical. Targets: ours <= 1.05 x cli_all, and ours < cli_each.

    python benchmarks/nnunet/bench_predict.py --model model.zip --images ct/*.nii.gz --device cpu
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gcmlm.radiology.core.nnunet import EXT_TRAINER_DIR, case_id_from_image

BIN = Path(sys.executable).parent


def model_identity(zip_path: Path) -> tuple[str, str, str, str, list[str]]:
    """(dataset, trainer, plans, configuration, folds) from the zip's folder names."""
    with zipfile.ZipFile(zip_path) as z:
        plans_json = next(n for n in z.namelist() if n.endswith("/plans.json"))
        dataset, model_dir = plans_json.split("/")[:2]
        folds = sorted({n.split("/")[2][len("fold_"):] for n in z.namelist()
                        if n.startswith(f"{dataset}/{model_dir}/fold_") and n.endswith("checkpoint_final.pth")})
    trainer, plans, configuration = model_dir.split("__")
    return dataset, trainer, plans, configuration, folds


def timed(cmd: list, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="nnU-Net model zip")
    parser.add_argument("--images", required=True, nargs="+", type=Path, help="CT images (.nii.gz)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--disable-tta", action="store_true")
    parser.add_argument("--step-size", default="0.5")
    parser.add_argument("--npp", default="3", help="preprocessing processes, both tools (nnU-Net default 3)")
    parser.add_argument("--nps", default="3", help="export processes, both tools (nnU-Net default 3)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run ours and cli_all this many times each, in ABBA order, and report medians")
    parser.add_argument("--skip-each", action="store_true", help="skip the one-call-per-case runs")
    parser.add_argument("--work", type=Path, help="keep outputs here (default: a temporary folder)")
    args = parser.parse_args()

    dataset, trainer, plans, configuration, folds = model_identity(args.model)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-nnunet-"))
    env = {**os.environ, "nnUNet_results": str(work / "results"), "nnUNet_raw": str(work / "raw"),
           "nnUNet_preprocessed": str(work / "pre"), "nnUNet_extTrainer": str(EXT_TRAINER_DIR)}
    subprocess.run([BIN / "nnUNetv2_install_pretrained_model_from_zip", args.model], env=env, check=True,
                   capture_output=True)
    cases = [case_id_from_image(p) for p in args.images]
    folder_all = work / "in_all"
    folder_all.mkdir(parents=True, exist_ok=True)
    for case, image in zip(cases, args.images, strict=True):
        (work / "in_each" / case).mkdir(parents=True, exist_ok=True)
        for folder in (folder_all, work / "in_each" / case):
            link = folder / f"{case}_0000.nii.gz"
            if not link.exists():
                link.symlink_to(image.resolve())

    shared = ["-f", *folds, "-step_size", args.step_size, "-chk", "checkpoint_final.pth", "-device", args.device,
              "-npp", args.npp, "-nps", args.nps] + (["--disable_tta"] if args.disable_tta else [])
    cli = [BIN / "nnUNetv2_predict", "-d", dataset, "-c", configuration, "-p", plans, "-tr", trainer,
           "--disable_progress_bar", *shared]
    ours = [BIN / "gcmlm", "nnunet-predict", "-q", "--model", args.model, "--images", *args.images,
            "--out", work / "ours", "--device", args.device, "--folds", *folds, "--step-size", args.step_size,
            "-npp", args.npp, "-nps", args.nps] + (["--disable-tta"] if args.disable_tta else [])

    print(f"model {args.model} ({trainer}__{plans}__{configuration}, folds {','.join(folds)}); "
          f"{len(cases)} cases; device {args.device}; TTA {'off' if args.disable_tta else 'on'}", flush=True)
    runs: dict[str, list[float]] = {"ours": [], "cli_all": []}
    commands = {"ours": ours, "cli_all": [*cli, "-i", folder_all, "-o", work / "cli_all"]}
    for repeat in range(args.repeats):  # ABBA order: load drift and warm caches hit both alike
        for name in (("ours", "cli_all") if repeat % 2 == 0 else ("cli_all", "ours")):
            runs[name].append(timed(commands[name], env))
            print(f"{name:9s} {runs[name][-1]:8.1f} s", flush=True)
    t_ours, t_all = (float(np.median(runs[k])) for k in ("ours", "cli_all"))
    outputs = ["ours", "cli_all"]
    if not args.skip_each:
        t_each = sum(timed([*cli, "-i", work / "in_each" / c, "-o", work / "cli_each"], env) for c in cases)
        print(f"cli_each  {t_each:8.1f} s", flush=True)
        outputs.append("cli_each")

    identical = True
    for case in cases:
        masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(work / d / f"{case}.nii.gz"))) for d in outputs]
        same = all(np.array_equal(masks[0], m) for m in masks[1:])
        identical &= same
        if not same:
            print(f"  {case}: masks differ")
    print(f"ours / cli_all  = {t_ours / t_all:.3f}  (target <= 1.05; medians of {args.repeats})")
    if not args.skip_each:
        print(f"ours / cli_each = {t_ours / t_each:.3f}  (target < 1)")
    print(f"masks identical across {', '.join(outputs)}: {identical}")
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
