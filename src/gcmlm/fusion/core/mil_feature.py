"""Attention-MIL risk as one more input of fusion-train's models, trained inside every outer fold.

fusion-train's ``path_mil`` model, and the MIL input of ``fused`` and ``stacked``, is the column
``mil_logit``: an ABMIL model's score of each patient's bag of patch features. The column cannot
come from the patient table, because a MIL model trained on every patient would carry the test
patients' outcomes into the nested CV. It is computed per outer split instead (``augment``):

- the held-out patients are scored by a MIL model fit on that split's training patients only;
- the training patients are scored by cross-fitting (``folds`` inner folds of the training
  patients, each patient scored by a model that did not see it), so the models downstream learn
  how far to trust an out-of-sample MIL score, not an overfit in-sample one.

No MIL fit ever sees a held-out patient's outcome (a test in tests/unit/test_fusion_mil.py permutes
the outcome and checks the nested AUC stays at chance). The final models get the same column on
all patients, and the MIL model fit on all patients is saved next to them (``models/path_mil_abmil/``,
a mil-train model folder): mil-predict writes ``mil_logit`` for new patients.

Each fit is seeded from (seed, split, inner fold) and runs on one CPU thread, so the column does not
depend on how many outer splits run in parallel.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from gcmlm.common.errors import GcmlmError, require_file
from gcmlm.common.manifest import map_slides, slide_id
from gcmlm.common.tables import PATIENT_ID

if TYPE_CHECKING:  # torch is imported only when MIL is used: the other fusion stages stay light
    from gcmlm.pathology.core.mil import Bag, FeatureSet, MILConfig, MILModel

log = logging.getLogger("gcmlm")

COLUMN = "mil_logit"  # what the models read; mil-predict writes the same column
MODEL = "path_mil"  # the model on that column alone, next to mean-pooled ``path``
SAVED_MODEL = "path_mil_abmil"  # folder under models/ with the MIL network fit on all patients
PRELOAD_BYTES = 2 << 30  # bags held in memory (read once) up to this size; streamed from h5 beyond


@dataclass(frozen=True)
class MILInputs:
    """What fusion-train is given for ``path_mil``: feature files, slide map, MIL settings."""

    features: Sequence[str | os.PathLike]  # CLAM feature h5 files, slide ID = file stem
    slide_map: str | os.PathLike | None = None  # patient_id,slide_id CSV or cohort manifest
    config: MILConfig | None = None  # None: mil-train's defaults

    def paths(self) -> list[Path]:
        return [Path(p) for p in self.features] + ([Path(self.slide_map)] if self.slide_map else [])

    def require_files(self) -> None:
        """Every feature file and the slide map exist (checked before the table is read)."""
        for path in self.paths():
            require_file(path, "file")


@dataclass
class MILFeature:
    """Patient bags and how to fit MIL models on them; ``augment`` adds ``mil_logit`` for one split."""

    bags: dict[str, Bag]  # patient ID -> bag
    config: MILConfig
    folds: int  # cross-fitting folds for the training patients' column
    seed: int
    identity: dict  # the encoder the features came from
    feature_dim: int

    def augment(self, table: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                split: int) -> pd.DataFrame:
        """``table`` with ``mil_logit``: cross-fitted on ``train``, from a MIL fit on ``train`` for ``test``."""
        ids = table[PATIENT_ID].astype(str).to_numpy()
        column = np.full(len(table), np.nan)
        column[train], model = self.cross_fit_and_fit(ids[train], y[train], split)
        column[test] = self.score(model, ids[test])
        return with_column(table, column)

    def cross_fit_and_fit(self, ids: np.ndarray, y: np.ndarray, split: int) -> tuple[np.ndarray, MILModel]:
        """Out-of-fold scores of these patients, and a MIL model fit on all of them."""
        return self.cross_fit(ids, y, split), self.fit(ids, y, seed=self._seed(split, -1))

    def cross_fit(self, ids: np.ndarray, y: np.ndarray, split: int) -> np.ndarray:
        """Out-of-fold MIL scores of these patients (each from a fit that did not see it)."""
        scores = np.full(len(ids), np.nan)
        inner = StratifiedKFold(self.folds, shuffle=True, random_state=self._seed(split, -2) % 2**32)
        for k, (fit_idx, score_idx) in enumerate(inner.split(ids, y)):
            model = self.fit(ids[fit_idx], y[fit_idx], seed=self._seed(split, k))
            scores[score_idx] = self.score(model, ids[score_idx])
        return scores

    def fit(self, ids: Sequence[str], y: np.ndarray, seed: int) -> MILModel:
        from gcmlm.pathology.core.mil import fit_mil

        with one_torch_thread():
            return fit_mil([self.bags[i] for i in ids], y, self.config, seed=seed, identity=self.identity,
                           progress=False)

    def score(self, model: MILModel, ids: Sequence[str]) -> np.ndarray:
        from gcmlm.pathology.core.mil import predict_mil

        with one_torch_thread():
            return np.array([p.logit for p in predict_mil(model, [self.bags[i] for i in ids])])

    def final(self, table: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, MILModel]:
        """The table for the final models (``mil_logit`` cross-fitted on all patients) and the MIL
        model fit on all of them."""
        column, model = self.cross_fit_and_fit(table[PATIENT_ID].astype(str).to_numpy(), y, split=-1)
        return with_column(table, column), model

    def _seed(self, split: int, fold: int) -> int:
        return int(np.random.SeedSequence([self.seed, split + 2, fold + 3]).generate_state(1)[0])


def with_column(table: pd.DataFrame, column: np.ndarray) -> pd.DataFrame:
    out = table.copy()
    out[COLUMN] = column
    return out


@contextlib.contextmanager
def one_torch_thread():
    """Each MIL fit on one thread: reproducible whatever the parallel outer splits, and no
    oversubscription when they run side by side."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_feature(inputs: MILInputs, table: pd.DataFrame, folds: int, seed: int,
                 source: str | os.PathLike) -> MILFeature:
    """Bags for every patient of ``table`` from CLAM feature files (slide ID = file stem) and a
    slide map (patient_id, slide_id; default: each slide is its own patient). A table patient
    without a slide is refused by name; slides of patients not in the table are left out (logged).
    Bags are read into memory once when they fit in ``PRELOAD_BYTES``."""
    from gcmlm.pathology.core.mil import MILConfig, bags_from_files

    config = (inputs.config or MILConfig()).check()
    files = [Path(f) for f in inputs.features]
    mapping = map_slides(files, inputs.slide_map)
    owner = {f: mapping[slide_id(f)] for f in files}
    patients = set(table[PATIENT_ID].astype(str))
    unused = sorted({p for p in owner.values() if p not in patients})
    kept = [f for f in files if owner[f] in patients]
    if unused:
        log.warning("--mil-features: %d patient(s) with slides are not in the table and are left out: %s",
                    len(unused), ", ".join(unused[:10]) + (" ..." if len(unused) > 10 else ""))
    if not kept:
        raise GcmlmError("no feature file belongs to a patient of the table (check --slide-map and the patient IDs)",
                         "--mil-features")
    features = bags_from_files(kept, mapping)
    missing = sorted(patients - {b.patient_id for b in features.bags})
    if missing:
        raise GcmlmError(f"{len(missing)} patient(s) of the table have no slide in --mil-features: "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", source)
    bags = {b.patient_id: b for b in _maybe_preload(features)}
    return MILFeature(bags, config, folds, seed, features.identity, features.feature_dim)


def _maybe_preload(features: FeatureSet) -> list[Bag]:
    from gcmlm.pathology.core.mil import Bag

    size = sum(b.n_patches for b in features.bags) * features.feature_dim * 4
    if size > PRELOAD_BYTES:
        log.info("MIL bags: %.1f GB, streamed from the h5 files", size / 1e9)
        return features.bags
    return [Bag.from_arrays(b.patient_id, {s.slide_id: s.load() for s in b.slides}) for b in features.bags]


def check_not_in_table(table: pd.DataFrame, source: str | os.PathLike) -> None:
    """A ``mil_logit`` column given in the table would be a MIL score from outside the folds."""
    if COLUMN in table.columns:
        raise GcmlmError(f"the table already has a '{COLUMN}' column; with --mil-features fusion-train computes it "
                         "inside each fold (a score from a MIL model trained on all patients would leak their "
                         "outcomes): drop the column", source)


def describe(feature: MILFeature) -> dict:
    """metrics.json / model card: how the MIL column was made."""
    return {
        "column": COLUMN, "architecture": feature.config.model, "config": feature.config.to_dict(),
        "features": feature.identity, "feature_dim": feature.feature_dim, "patients": len(feature.bags),
        "cross_fitting_folds": feature.folds,
        "provenance": "per outer split: held-out patients scored by a MIL model fit on the training patients; "
                      f"training patients by {feature.folds}-fold cross-fitting within them",
    }
