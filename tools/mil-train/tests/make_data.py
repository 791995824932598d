"""Write the synthetic bags of the MIL cwltests and unit tests (run from anywhere; deterministic).

40 patients (P00-P39), 36 patches of 16-d features each, half of them positive; in a positive
patient 4 neighbouring patches (11 %) carry the signal (``planted`` in each h5, which readers of
CLAM's layout ignore). P00-P03 have two slides (A: the first 18 patches, B: the rest), the others
one. P00-P31 train; P32-P39 are held out (mil-predict's and mil-heatmap's tests).
"""

from pathlib import Path

import h5py
import numpy as np

from gcmlm.pathology.core.mil import planted_bags

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
N_PATIENTS, N_PATCHES, DIM, N_TRAIN = 40, 36, 16, 32
ENCODER = {"encoder": "synthetic", "checkpoint_sha256": "synthetic-16d", "feature_dim": DIM, "complete": True}
COORD_ATTRS = {"patch_size": np.int64(256), "patch_level": np.int64(0), "downsample": np.array([1.0, 1.0]),
               "level_dim": np.array([4096, 3072]), "downsampled_level_dim": np.array([4096, 3072])}


def slides_of(index: int) -> dict[str, slice]:
    if index < 4:
        return {"A": slice(0, N_PATCHES // 2), "B": slice(N_PATCHES // 2, N_PATCHES)}
    return {"A": slice(0, N_PATCHES)}


def write_slide(path: Path, features: np.ndarray, coords: np.ndarray, planted: np.ndarray) -> None:
    with h5py.File(path, "w") as h5:
        fset = h5.create_dataset("features", data=features.astype(np.float32))
        fset.attrs.update({**ENCODER, "n_patches": len(features)})
        cset = h5.create_dataset("coords", data=coords.astype(np.int64))
        cset.attrs.update(COORD_ATTRS)
        h5.create_dataset("planted", data=planted)


def main() -> None:
    DATA.mkdir(exist_ok=True)
    patients, labels = planted_bags(N_PATIENTS, N_PATCHES, DIM, seed=13, planted_fraction=4 / N_PATCHES, shift=2.0)
    slide_rows, label_rows = ["patient_id,slide_id"], ["patient_id,mlm,centre"]
    for i, (patient, label) in enumerate(zip(patients, labels, strict=True)):
        pid = f"P{i:02d}"
        label_rows.append(f"{pid},{label},{'A' if i % 3 else 'B'}")
        for name, part in slides_of(i).items():
            sid = f"{pid}-{name}"
            slide_rows.append(f"{pid},{sid}")
            coords = patient["coords"][part] + np.array([512, 512])
            write_slide(DATA / f"{sid}.h5", patient["features"][part], coords, patient["planted"][part])
    (DATA / "slide_map.csv").write_text("\n".join(slide_rows) + "\n")
    (DATA / "labels.csv").write_text("\n".join(label_rows) + "\n")


def slide_files(first: int, last: int) -> list[Path]:
    """The feature files of patients first..last (inclusive), in order."""
    return [DATA / f"P{i:02d}-{name}.h5" for i in range(first, last + 1) for name in slides_of(i)]


if __name__ == "__main__":
    main()
