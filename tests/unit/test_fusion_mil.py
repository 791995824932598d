"""fusion-train's path_mil: an attention-MIL score trained inside every outer fold, without leakage.

Synthetic cohorts from ``planted_bags``: in positive patients a small block of patches carries the
signal; the patient table holds the mean-pooled features (``path_``), as slide-pool would write.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gcmlm.common.errors import GcmlmError
from gcmlm.fusion.core import mil_feature
from gcmlm.fusion.core.mil_feature import MILInputs
from gcmlm.fusion.core.survival import SurvivalOutcome
from gcmlm.fusion.fusion_train import TrainSettings, train_models
from gcmlm.pathology.core.clam_h5 import PatchFeatures, write_features
from gcmlm.pathology.core.mil import MILConfig, load_mil_model, planted_bags

# A small network and few epochs: these cohorts are tiny and the signal is plain.
CONFIG = MILConfig(hidden=16, attention_dim=8, max_epochs=15, lr=1e-3)
DIM = 16


def write_cohort(folder, n_patients, seed, planted_fraction=0.05, n_patches=80):
    """Feature h5 per slide (one slide per patient), a slide map, and the mean-pooled patient table."""
    folder.mkdir(parents=True, exist_ok=True)
    patients, labels = planted_bags(n_patches=n_patches, n_patients=n_patients, dim=DIM, seed=seed,
                                    planted_fraction=planted_fraction, shift=3.0, signal_dims=4)
    files, rows = [], []
    for i, (patient, label) in enumerate(zip(patients, labels, strict=True)):
        path = folder / f"S{i:03d}.h5"
        write_features(path, PatchFeatures(patient["features"], patient["coords"], {"encoder": "synthetic"}))
        files.append(path)
        mean = patient["features"].mean(axis=0)
        rows.append({"patient_id": f"P{i:03d}", **{f"path_f{j}": float(mean[j]) for j in range(DIM)},
                     "mlm": int(label)})
    slide_map = folder / "slides.csv"
    pd.DataFrame({"patient_id": [r["patient_id"] for r in rows], "slide_id": [f.stem for f in files]}).to_csv(
        slide_map, index=False)
    return pd.DataFrame(rows), files, slide_map


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("mil-cohort"), 64, seed=3)


SETTINGS = TrainSettings(outer_folds=4, outer_repeats=1, inner_folds=3, tuning="fast", n_jobs=1)


@pytest.mark.xdist_group("fusion-mil")
def test_path_mil_beside_mean_pooling_fused_and_stacked(cohort, tmp_path):
    table, files, slide_map = cohort
    result = train_models(table, "mlm", SETTINGS, tmp_path / "out", mil=MILInputs(files, slide_map, CONFIG))
    assert list(result.summary) == ["path", "path_mil", "fused", "stacked"]
    # The planted block is 5 % of each positive bag: attention finds it, the mean dilutes it.
    assert result.summary["path_mil"]["auc"] > 0.9
    assert result.summary["path_mil"]["auc"] > result.summary["path"]["auc"]
    pairs = {(c["model"], c["versus"]) for c in result.comparisons}
    assert {("path_mil", "path"), ("fused", "path_mil"), ("stacked", "path_mil")} <= pairs
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["design"]["mil"]["column"] == "mil_logit" and metrics["design"]["mil"]["patients"] == 64
    # The final models read mil_logit; the MIL network fit on all patients is a mil-train model folder.
    assert result.models["path_mil"].features == ["mil_logit"]
    assert "mil_logit" in result.models["fused"].features
    saved = load_mil_model(tmp_path / "out" / "models" / mil_feature.SAVED_MODEL)
    assert saved.feature_dim == DIM and saved.training["n_train"] + saved.training["n_validation"] == 64
    assert "path_mil" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.xdist_group("fusion-mil")
def test_no_mil_fit_sees_a_held_out_patient(cohort, monkeypatch):
    """Every MIL fit of an outer split uses that split's training patients only."""
    table, files, slide_map = cohort
    fits = []
    original = mil_feature.MILFeature.fit

    def recording_fit(self, ids, y, seed):
        fits.append(set(ids))
        return original(self, ids, y, seed)

    augments = []
    original_augment = mil_feature.MILFeature.augment

    def recording_augment(self, table, y, train, test, split):
        before = len(fits)
        out = original_augment(self, table, y, train, test, split)
        augments.append((set(table["patient_id"].iloc[test]), fits[before:], out))
        return out

    monkeypatch.setattr(mil_feature.MILFeature, "fit", recording_fit)
    monkeypatch.setattr(mil_feature.MILFeature, "augment", recording_augment)
    train_models(table, "mlm", TrainSettings(**{**SETTINGS.__dict__, "models": ("path_mil",)}), None,
                 mil=MILInputs(files, slide_map, CONFIG))
    assert len(augments) == SETTINGS.outer_folds
    for held_out, split_fits, augmented in augments:
        assert len(split_fits) == SETTINGS.inner_folds + 1  # cross-fitting, then the model for the held-out fold
        assert all(not (fit & held_out) for fit in split_fits)
        assert augmented["mil_logit"].notna().all()


@pytest.mark.xdist_group("fusion-mil")
def test_permuted_outcome_gives_chance_auc(tmp_path):
    """With the outcome permuted, the nested AUC of path_mil averages 0.50 +- 0.07 over 5 permutations:
    no held-out outcome reaches a MIL fit (a leak would show as an AUC well above chance)."""
    table, files, slide_map = write_cohort(tmp_path / "data", 64, seed=11)
    settings = TrainSettings(outer_folds=4, outer_repeats=2, inner_folds=3, tuning="none", models=("path_mil",),
                             n_jobs=2)
    aucs = []
    for k in range(5):
        permuted = table.assign(mlm=np.random.default_rng(100 + k).permutation(table["mlm"].to_numpy()))
        result = train_models(permuted, "mlm", settings, None, mil=MILInputs(files, slide_map, CONFIG))
        aucs.append(result.summary["path_mil"]["auc"])
    print(f"path_mil nested AUC with permuted outcomes: {np.round(aucs, 3).tolist()}, mean {np.mean(aucs):.3f}")
    assert abs(np.mean(aucs) - 0.5) <= 0.07, aucs
    # The same design on the true outcome is far from chance: the test can tell a signal from none.
    true = train_models(table, "mlm", settings, None, mil=MILInputs(files, slide_map, CONFIG))
    assert true.summary["path_mil"]["auc"] > 0.85


def test_column_does_not_depend_on_parallel_splits(cohort):
    table, files, slide_map = cohort
    settings = TrainSettings(**{**SETTINGS.__dict__, "models": ("path_mil",), "outer_folds": 3, "inner_folds": 2})
    runs = [train_models(table, "mlm", TrainSettings(**{**settings.__dict__, "n_jobs": n}), None,
                         mil=MILInputs(files, slide_map, MILConfig(hidden=8, attention_dim=4, max_epochs=3)))
            for n in (1, 2)]
    pd.testing.assert_frame_equal(runs[0].cv.oof, runs[1].cv.oof)


def test_refusals(cohort, tmp_path):
    table, files, slide_map = cohort
    mil = MILInputs(files, slide_map, CONFIG)
    with pytest.raises(GcmlmError, match="have no slide in --mil-features: P063"):
        train_models(table, "mlm", SETTINGS, None, mil=MILInputs(files[:-1], slide_map, CONFIG))
    with pytest.raises(GcmlmError, match="already has a 'mil_logit' column"):
        train_models(table.assign(mil_logit=0.0), "mlm", SETTINGS, None, mil=mil)
    with pytest.raises(GcmlmError, match="trained on a binary outcome"):
        train_models(table.assign(t=12.0), SurvivalOutcome("t", "mlm"), SETTINGS, None, mil=mil)
    with pytest.raises(GcmlmError, match="needs patch features"):
        train_models(table, "mlm", TrainSettings(models=("path_mil",)), None)
    out = tmp_path / "out"
    with pytest.raises(GcmlmError, match="slide 'S000' is not in the slide map"):
        other_map = tmp_path / "map.csv"
        pd.DataFrame({"patient_id": ["P001"], "slide_id": ["S001"]}).to_csv(other_map, index=False)
        train_models(table, "mlm", SETTINGS, out, mil=MILInputs(files, other_map, CONFIG))
    assert not out.exists()
