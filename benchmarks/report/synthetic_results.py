"""A synthetic gc-mlm results tree (the grouped layout of workflows/gc-mlm.cwl) for any cohort size.

Used by bench_report.py and tests/unit/test_run_report.py. Every patient has a CT mask (NIfTI,
written with SimpleITK), a CT overlay PNG, a radiomics row and one or two slides with tiling
summaries and QA PNGs; patient 3 has an empty mask, patient 5 a slide with 2 patches, patient 7
is dropped at the fusion join. The PNGs are copies of one small generated image.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

EMPTY_MASK, FEW_PATCHES, DROPPED = 3, 5, 7


def png_bytes(width: int = 96, height: int = 72) -> bytes:
    """A small RGB gradient as PNG (zlib only)."""
    x = np.linspace(0, 255, width, dtype=np.uint8)
    rgb = np.stack([np.tile(x, (height, 1)), np.tile(x[::-1], (height, 1)), np.full((height, width), 90, np.uint8)], -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_mask(path: Path, tumour_voxels: int, shape=(16, 16, 8), spacing=(1.0, 1.0, 2.0), empty: bool = False
               ) -> np.ndarray:
    """A label map: an organ (1) block with ``tumour_voxels`` of tumour (2); all 0 when ``empty``."""
    import SimpleITK as sitk

    array = np.zeros(shape[::-1], np.uint8)  # z, y, x
    if not empty:
        array[2:6, 2:14, 2:14] = 1
    flat = array.reshape(-1)
    flat[np.flatnonzero(flat)[:tumour_voxels]] = 2
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return array


def patient_ids(n: int) -> list[str]:
    return [f"P{i:04d}" for i in range(1, n + 1)]


def write_results_tree(root: Path, n_patients: int) -> Path:
    """The tree under ``root`` (created); returns ``root``."""
    dirs = {name: root / name for name in ("radiology/masks", "radiology/qa", "radiology/features", "pathology/coords",
                                           "pathology/features", "pathology/qa", "fusion/model")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    png = png_bytes()
    pids = patient_ids(n_patients)
    rad_rows, pool_slides = [], []
    for i, pid in enumerate(pids, start=1):
        voxels = 0 if i == EMPTY_MASK else 20 + i % 50
        write_mask(dirs["radiology/masks"] / f"{pid}.nii.gz", voxels, empty=i == EMPTY_MASK)
        (dirs["radiology/qa"] / f"{pid}.png").write_bytes(png)
        preprocess = {"input": {"path": f"{pid}.nii.gz"}, "warnings": ["CT direction is not orthogonal"] if i == 2 else []}
        (dirs["radiology/qa"] / f"{pid}_ct_preprocess.json").write_text(json.dumps(preprocess))
        rad_rows.append(f"{pid},{voxels * 2.0},{i * 0.1:.3f}")
        for letter in "AB"[: 1 + i % 2]:
            sid = f"{pid}-{letter}"
            n = 2 if i == FEW_PATCHES else 40 + i % 30
            summary = {"slide_id": sid, "n_patches": n, "tissue_area_mm2": round(n * 0.065, 4), "slide": {"mpp": 0.5}}
            (dirs["pathology/qa"] / f"{sid}.json").write_text(json.dumps(summary))
            for kind in ("tissue", "patches"):
                (dirs["pathology/qa"] / f"{sid}_{kind}.png").write_bytes(png)
            (dirs["pathology/coords"] / f"{sid}.h5").write_bytes(b"")
            pool_slides.append({"slide_id": sid, "patient_id": pid, "n_patches": n, "used": True})
    (dirs["radiology/features"] / "radiomics_features.csv").write_text(
        "patient_id,rad_original_shape_VoxelVolume,rad_firstorder_Mean\n" + "\n".join(rad_rows) + "\n")
    (dirs["pathology/qa"] / "slide_pool_report.json").write_text(
        json.dumps({"slides": pool_slides, "empty_slides": [], "n_patients": len(pids)}))
    (dirs["pathology/features"] / "pathology_features.csv").write_text(
        "patient_id,path_n_slides,path_n_patches,path_0000\n" + "\n".join(f"{p},1,40,0.5" for p in pids) + "\n")
    dropped = [pids[DROPPED - 1]] if n_patients >= DROPPED else []
    join = {"policy": "drop", "patients_in_any_table": len(pids), "merged_patients": len(pids) - len(dropped),
            "dropped_patients": dropped, "problem_patients": {p: ["absent from clinical.csv"] for p in dropped}}
    (root / "fusion" / "join_report.json").write_text(json.dumps(join))
    (dirs["fusion/model"] / "metrics.json").write_text(json.dumps({"models": {"rad": {"auc": 0.71}, "fused": {"auc": 0.8}}}))
    (dirs["fusion/model"] / "report.html").write_text("<!DOCTYPE html><title>model report</title><p>model report</p>")
    return root

