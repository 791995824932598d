"""Attention-based multiple-instance learning (MIL) on patch-feature bags: the model, its training,
its prediction and its safe file format, shared by mil-train, mil-predict and fusion-train (path_mil).

A patient is one bag: the patches of all of its slides, concatenated. The outcome is a patient's,
so the bag is too; slides of one patient share one attention softmax, and a slide-level risk is the
same model applied to that slide alone. The network is gated attention MIL (ABMIL, Ilse et al.
2018): patch features -> Linear+ReLU -> gated attention weights a_i (softmax over the bag) ->
sum_i a_i h_i -> Linear -> logit. Patch features are first standardised with the per-dimension mean
and standard deviation of the training patches (stored in the model): foundation-model and CNN
features share a large common component (a norm of ~5 against a spread of ~0.3 for the demo's
ResNet-18), on which training stalls at the first epoch.

Typed API (works on in-memory arrays and on CLAM feature h5 files, streamed one bag at a time):
``bags_from_files`` / ``Bag.from_arrays`` -> ``fit_mil(bags, labels, config, seed)`` -> ``MILModel``
-> ``predict_mil(model, bags)``; ``save_mil_model`` / ``load_mil_model`` write and read a folder of
``model.safetensors`` + ``config.json`` (nothing pickled). CPU runs are deterministic for a seed and
a thread count; the torch RNG of the caller is left as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gcmlm import __version__
from gcmlm.common.atomic import atomic_dir
from gcmlm.common.errors import GcmlmError, one_line, require_dir
from gcmlm.common.manifest import slide_id
from gcmlm.pathology.core.clam_h5 import read_features
from gcmlm.pathology.core.slide import claim_slide_id

log = logging.getLogger("gcmlm")

PathLike = str | os.PathLike
MODELS = ("abmil",)
DEVICES = ("auto", "cpu", "cuda")
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "gcmlm-mil/2"  # config.json's "format": what load_mil_model knows how to read (2: standardisation)


# --- configuration ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MILConfig:
    """Architecture and training settings; the defaults are the command line's too."""

    model: str = "abmil"
    hidden: int = 128  # width of the patch embedding (the first Linear)
    attention_dim: int = 64  # width of the gated attention branch
    dropout: float = 0.25
    lr: float = 2e-4
    weight_decay: float = 1e-4
    max_epochs: int = 40
    patience: int = 8  # epochs without a lower validation loss before stopping
    val_fraction: float = 0.2  # of the training patients, stratified; 0: no early stopping
    max_patches: int = 1024  # random patches per bag and epoch in training (all at prediction); 0: all

    # field: (option, lowest, lowest allowed?, highest or None, highest allowed?), checked by ``check``
    _RANGES = {
        "hidden": ("--hidden", 1, True, None, True), "attention_dim": ("--attention-dim", 1, True, None, True),
        "dropout": ("--dropout", 0.0, True, 1.0, False), "lr": ("--lr", 0.0, False, None, True),
        "weight_decay": ("--weight-decay", 0.0, True, None, True), "max_epochs": ("--max-epochs", 1, True, None, True),
        "patience": ("--patience", 1, True, None, True), "val_fraction": ("--val-fraction", 0.0, True, 0.5, True),
        "max_patches": ("--max-patches", 0, True, None, True),
    }

    def check(self) -> MILConfig:
        """Refuse out-of-range values, naming the command-line option; returns self."""
        if self.model not in MODELS:
            raise GcmlmError(f"unknown model '{self.model}'; expected one of {', '.join(MODELS)}", "--model")
        for name, (option, low, low_ok, high, high_ok) in self._RANGES.items():
            value = getattr(self, name)
            if not math.isfinite(value) or value < low or (value == low and not low_ok):
                raise GcmlmError(f"must be {'>=' if low_ok else '>'} {low}, got {value}", option)
            if high is not None and (value > high or (value == high and not high_ok)):
                raise GcmlmError(f"must be {'<=' if high_ok else '<'} {high}, got {value}", option)
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping) -> MILConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# --- the network --------------------------------------------------------------------------------------

class GatedABMIL(nn.Module):
    """Gated attention MIL (Ilse et al. 2018): one bag (N, D) -> (logit, attention scores (N,))."""

    def __init__(self, in_dim: int, hidden: int, attention_dim: int, dropout: float):
        super().__init__()
        # Standardisation of the inputs, set from the training patches (``set_standardisation``);
        # buffers, so they are saved and loaded with the weights.
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_scale", torch.ones(in_dim))
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attention_v = nn.Linear(hidden, attention_dim)  # tanh branch
        self.attention_u = nn.Linear(hidden, attention_dim)  # sigmoid gate
        self.attention_w = nn.Linear(attention_dim, 1)
        self.classifier = nn.Linear(hidden, 1)

    def set_standardisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.feature_mean.copy_(torch.from_numpy(np.asarray(mean, np.float32)))
        self.feature_scale.copy_(torch.from_numpy(np.maximum(np.asarray(std, np.float32), 1e-6)))

    def forward(self, bag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed((bag - self.feature_mean) / self.feature_scale)
        scores = self.attention_w(torch.tanh(self.attention_v(h)) * torch.sigmoid(self.attention_u(h))).squeeze(-1)
        weights = torch.softmax(scores, dim=0)
        logit = self.classifier(weights @ h).squeeze(-1)
        return logit, scores


def build_network(config: MILConfig, in_dim: int) -> nn.Module:
    return GatedABMIL(in_dim, config.hidden, config.attention_dim, config.dropout)


# --- bags -------------------------------------------------------------------------------------------

@dataclass
class SlideFeatures:
    """One slide's patches: an in-memory (N, D) array, or a CLAM feature h5 read when used."""

    slide_id: str
    source: np.ndarray | Path
    n_patches: int
    dim: int

    def load(self) -> np.ndarray:
        if isinstance(self.source, np.ndarray):
            return self.source
        return read_features(self.source).features


@dataclass
class Bag:
    """A patient's bag: the patches of its slides, in slide order."""

    patient_id: str
    slides: list[SlideFeatures]

    @property
    def n_patches(self) -> int:
        return sum(s.n_patches for s in self.slides)

    @property
    def dim(self) -> int:
        return self.slides[0].dim

    def load(self) -> np.ndarray:
        """The bag's (N, D) float32 features (read from the h5 files now: bags are streamed)."""
        parts = [s.load() for s in self.slides]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @classmethod
    def from_arrays(cls, patient_id: str, arrays: Mapping[str, np.ndarray]) -> Bag:
        """A bag from in-memory features, slide ID -> (N, D) array."""
        slides = []
        for sid, array in arrays.items():
            array = np.asarray(array, np.float32)
            if array.ndim != 2 or not len(array):
                raise GcmlmError(f"slide {sid}: features must be a non-empty (N, D) array, got shape {array.shape}")
            slides.append(SlideFeatures(sid, array, len(array), array.shape[1]))
        return cls(patient_id, slides)


@dataclass
class FeatureSet:
    """Bags read from feature files, with what the files say about their encoder."""

    bags: list[Bag]
    feature_dim: int
    identity: dict  # encoder, checkpoint_sha256 (None when the files do not say)
    paths: dict[str, Path]  # slide ID -> feature file
    slide_to_patient: dict[str, str]
    empty_slides: list[str] = field(default_factory=list)  # zero patches: left out of their bags


def feature_identity(attrs: Mapping) -> dict:
    """The encoder a feature file names (patch-embed writes it; CLAM's own files do not)."""
    def text(value):
        return None if value is None else (value.decode() if isinstance(value, bytes) else str(value))
    return {"encoder": text(attrs.get("encoder")), "checkpoint_sha256": text(attrs.get("checkpoint_sha256"))}


def describe_identity(identity: Mapping) -> str:
    if not identity.get("encoder"):
        return "no encoder stated"
    return f"encoder {identity['encoder']} (checkpoint sha256 {identity.get('checkpoint_sha256') or 'unstated'})"


def check_slide_file(path: Path, expect_dim: int | None, expect_identity: dict | None) -> tuple[int, int, dict]:
    """(patches, feature dim, identity) of one feature file, read once in full: refuses non-finite
    values, a file marked incomplete, and a dim or encoder other than the expected one."""
    from gcmlm.pathology.core.clam_h5 import refuse_incomplete

    read = read_features(path)
    refuse_incomplete(read.attrs, path)
    n, dim = read.features.shape
    identity = feature_identity(read.attrs)
    if n and not np.isfinite(read.features).all():
        raise GcmlmError("features contain NaN or infinite values", path)
    if n and expect_dim is not None and dim != expect_dim:
        raise GcmlmError(f"feature dimension {dim} differs from the model's / the other slides' {expect_dim}", path)
    if expect_identity is not None and identity != expect_identity:
        raise GcmlmError(f"features from {describe_identity(identity)}, but the model / the other slides use "
                         f"{describe_identity(expect_identity)}", path)
    return n, dim, identity


def bags_from_files(feature_files: Sequence[PathLike], slide_to_patient: Mapping[str, str],
                    expect_dim: int | None = None, expect_identity: dict | None = None) -> FeatureSet:
    """Patient bags from CLAM feature files (slide ID = file stem), each file checked once in full
    (one at a time, so memory stays at one slide). Slides with zero patches are left out and
    listed; a patient left without patches is an error naming it."""
    seen: set[str] = set()
    patients: dict[str, list[SlideFeatures]] = {}
    paths: dict[str, Path] = {}
    empty: list[str] = []
    dim, identity = expect_dim, expect_identity
    for raw in feature_files:
        path = Path(raw)
        sid = slide_id(path)
        claim_slide_id(sid, seen, path)
        n, file_dim, file_identity = check_slide_file(path, dim, identity)
        identity = file_identity if identity is None else identity
        paths[sid] = path
        if n == 0:
            empty.append(sid)
            patients.setdefault(slide_to_patient[sid], [])
            continue
        dim = file_dim if dim is None else dim
        patients.setdefault(slide_to_patient[sid], []).append(SlideFeatures(sid, path, n, file_dim))
    for pid, slides in patients.items():
        if not slides:
            sids = [s for s in paths if slide_to_patient[s] == pid]
            raise GcmlmError(f"patient '{pid}' has no usable slide: every slide ({', '.join(sids)}) has zero patches",
                             paths[sids[0]])
    for sid in empty:
        log.warning("slide %s has no patches (%s); left out of its patient's bag and listed under empty_slides",
                    sid, paths[sid])
    bags = [Bag(pid, slides) for pid, slides in patients.items()]
    return FeatureSet(bags, int(dim or 0), identity or feature_identity({}), paths,
                      {s: slide_to_patient[s] for s in paths}, empty)


# --- training ---------------------------------------------------------------------------------------

@dataclass
class MILModel:
    """A trained network with its configuration, input contract and training record."""

    network: nn.Module
    config: MILConfig
    feature_dim: int
    identity: dict  # the encoder the training features came from (see feature_identity)
    training: dict = field(default_factory=dict)  # history, best_epoch, patients, seed, ...


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC (Mann-Whitney U with mid-ranks for ties); None with only one class."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = np.asarray(scores)[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mid = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(mid, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def inner_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices; each class gives round(fraction * its count), >= 1."""
    if fraction == 0:
        return np.arange(len(labels)), np.array([], int)
    val = []
    for cls in (0, 1):
        members = np.flatnonzero(labels == cls)
        k = max(1, round(fraction * len(members)))
        if k >= len(members):
            raise GcmlmError(f"{len(members)} patient(s) with outcome {cls}: too few for a validation split of "
                             f"{fraction:g} (each class needs at least 2); lower --val-fraction or use 0",
                             "--val-fraction")
        val.extend(rng.choice(members, size=k, replace=False).tolist())
    val_idx = np.sort(np.array(val, int))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def check_labels(labels: Sequence[int]) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise GcmlmError("labels must be 0/1, one per bag")
    for cls in (0, 1):
        if not (y == cls).any():
            raise GcmlmError(f"no patient with outcome {cls}: MIL needs both classes to train", "--labels")
    return y.astype(np.int64)


def patch_moments(bags: Sequence[Bag]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over every patch of ``bags`` (one pass, one bag in
    memory at a time; float64 sums)."""
    total = squares = None
    count = 0
    for bag in bags:
        features = bag.load().astype(np.float64)
        total = features.sum(0) if total is None else total + features.sum(0)
        squares = (features ** 2).sum(0) if squares is None else squares + (features ** 2).sum(0)
        count += len(features)
    mean = total / count
    return mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))


def _subsample(features: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if limit <= 0 or len(features) <= limit:
        return features
    return features[np.sort(rng.choice(len(features), size=limit, replace=False))]


def _bce(logit: torch.Tensor, target: float, pos_weight: float = 1.0) -> torch.Tensor:
    weight = torch.tensor(pos_weight if target == 1 else 1.0, device=logit.device)
    target_t = torch.tensor(float(target), device=logit.device)
    return weight * nn.functional.binary_cross_entropy_with_logits(logit, target_t)


def _evaluate(network: nn.Module, bags: Sequence[Bag], y: np.ndarray, device: torch.device) -> tuple[float, float | None]:
    """Mean unweighted BCE and AUC of ``bags`` (all patches)."""
    network.eval()
    losses, scores = [], []
    with torch.inference_mode():
        for bag, target in zip(bags, y, strict=True):
            logit, _ = network(torch.from_numpy(bag.load()).to(device))
            losses.append(float(_bce(logit, float(target))))
            scores.append(float(logit))
    return float(np.mean(losses)), roc_auc(y, np.array(scores))


def fit_mil(bags: Sequence[Bag], labels: Sequence[int], config: MILConfig = MILConfig(), seed: int = 0,
            device: str | torch.device = "cpu", identity: Mapping | None = None, progress: bool = True) -> MILModel:
    """Train a MIL model on ``bags`` (one per patient) and their 0/1 ``labels``.

    Early stopping: a stratified ``config.val_fraction`` of these patients (drawn with ``seed``,
    never other patients) is held out; the weights of the epoch with the lowest validation loss are
    kept. ``identity``: the encoder the features came from (``FeatureSet.identity``), recorded so
    that prediction can refuse other features. Training: one bag per step (AdamW), at most ``config.max_patches`` random patches per bag
    and epoch, positive bags weighted by n_negative / n_positive. The torch RNG is seeded inside a
    forked RNG state, so the caller's is untouched.
    """
    config.check()
    y = check_labels(labels)
    if len(y) != len(bags):
        raise GcmlmError(f"{len(bags)} bags but {len(y)} labels")
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = inner_split(y, config.val_fraction, rng)
    in_dim = check_dims(bags)
    train_bags, train_y = [bags[i] for i in train_idx], y[train_idx]
    val_bags, val_y = [bags[i] for i in val_idx], y[val_idx]
    pos_weight = float((train_y == 0).sum() / max(1, (train_y == 1).sum()))
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        network = build_network(config, in_dim)
        network.set_standardisation(*patch_moments(train_bags))
        network = network.to(device)
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        history, best = _train_epochs(network, optimiser, train_bags, train_y, val_bags, val_y, config, rng,
                                      device, pos_weight, progress)
    network.load_state_dict(best["state"])
    network.eval()
    training = {
        "seed": seed, "device": device.type, "torch": torch.__version__, "gcmlm": __version__,
        "n_train": len(train_idx), "n_validation": len(val_idx), "pos_weight": pos_weight,
        "train_patients": [bags[i].patient_id for i in train_idx],
        "validation_patients": [bags[i].patient_id for i in val_idx],
        "best_epoch": best["epoch"], "stopped_early": len(history) < config.max_epochs,
        "selection": "lowest validation loss" if len(val_idx) else "last epoch (no validation split)",
        "history": history,
    }
    return MILModel(network, config, in_dim, dict(identity or feature_identity({})), training)


def check_dims(bags: Sequence[Bag], expect: int | None = None) -> int:
    """The bags' common feature dimension (``expect``, the model's, when given)."""
    if not bags:
        raise GcmlmError("no bags")
    dim = expect if expect is not None else bags[0].dim
    for bag in bags:
        if any(s.dim != dim for s in bag.slides):
            raise GcmlmError(f"patient {bag.patient_id}: feature dimension differs from {dim}")
    return dim


def _train_epochs(network, optimiser, train_bags, train_y, val_bags, val_y, config: MILConfig,
                  rng: np.random.Generator, device: torch.device, pos_weight: float, progress: bool):
    history: list[dict] = []
    best = {"epoch": 0, "val_loss": math.inf, "state": None}
    for epoch in range(1, config.max_epochs + 1):
        network.train()
        losses = []
        for i in rng.permutation(len(train_bags)):
            features = _subsample(train_bags[i].load(), config.max_patches, rng)
            logit, _ = network(torch.from_numpy(np.ascontiguousarray(features)).to(device))
            loss = _bce(logit, float(train_y[i]), pos_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if len(val_bags):
            record["val_loss"], record["val_auc"] = _evaluate(network, val_bags, val_y, device)
        history.append(record)
        if progress:
            log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                      if k != "epoch" and v is not None))
        score = record.get("val_loss", -epoch)  # without validation: the last epoch wins
        if score < best["val_loss"]:
            best = {"epoch": epoch, "val_loss": score, "state": copy.deepcopy(network.state_dict())}
        elif len(val_bags) and epoch - best["epoch"] >= config.patience:
            break
    return history, best


# --- prediction -------------------------------------------------------------------------------------

@dataclass
class BagPrediction:
    """A patient's risk (the model's probability), each slide's own risk and the patches' attention."""

    patient_id: str
    risk: float
    slide_risks: dict[str, float]
    logit: float  # the risk before the sigmoid: the score fusion-train's models read (column mil_logit)
    attention: dict[str, np.ndarray]  # slide ID -> (N,) softmax weights over the patient's whole bag
    n_patches: dict[str, int]


def predict_mil(model: MILModel, bags: Sequence[Bag], device: str | torch.device = "cpu") -> list[BagPrediction]:
    """Risk per patient (all of its patches in one bag) and per slide (the slide alone as a bag),
    with per-patch attention; every patch is used."""
    check_dims(bags, model.feature_dim)
    device = torch.device(device)
    network = model.network.to(device).eval()
    results = []
    with torch.inference_mode():
        for bag in bags:
            parts = [s.load() for s in bag.slides]
            logit, scores = network(torch.from_numpy(np.concatenate(parts)).to(device))
            weights = torch.softmax(scores, dim=0).float().cpu().numpy()
            bounds = np.cumsum([0, *(len(p) for p in parts)])
            attention = {s.slide_id: weights[a:b] for s, a, b in zip(bag.slides, bounds[:-1], bounds[1:], strict=True)}
            slide_risks = {bag.slides[0].slide_id: _probability(logit)}
            if len(bag.slides) > 1:  # each slide alone as a bag
                slide_risks = {s.slide_id: _probability(network(torch.from_numpy(part).to(device))[0])
                               for s, part in zip(bag.slides, parts, strict=True)}
            results.append(BagPrediction(bag.patient_id, _probability(logit), slide_risks, float(logit), attention,
                                         {s.slide_id: len(p) for s, p in zip(bag.slides, parts, strict=True)}))
    return results


def _probability(logit: torch.Tensor) -> float:
    return float(torch.sigmoid(logit.float()))


# --- the model folder -------------------------------------------------------------------------------

def model_config(model: MILModel) -> dict:
    """config.json: what builds the network again, and what its inputs must be."""
    return {
        "format": FORMAT, "architecture": model.config.model, "config": model.config.to_dict(),
        "feature_dim": model.feature_dim, "features": model.identity,
        "weights": WEIGHTS, "gcmlm": __version__,
        "training": {k: v for k, v in model.training.items() if k != "history"},
    }


def save_mil_model(model: MILModel, out: PathLike, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write ``out``/model.safetensors and ``out``/config.json (+ ``extra_files``) as one folder, atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
    with atomic_dir(out) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        os.chmod(tmp / WEIGHTS, 0o644)  # safetensors creates it owner-only; a model is meant to be shared
        (tmp / CONFIG).write_text(json.dumps(model_config(model), indent=2) + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
    return Path(out)


def load_mil_model(folder: PathLike) -> MILModel:
    """A model folder written by ``save_mil_model``: config.json, then the weights through
    safetensors (no pickle, no code), loaded strictly into the network the config describes."""
    folder = require_dir(folder, "mil-train model folder")
    config_path, weights_path = folder / CONFIG, folder / WEIGHTS
    if not config_path.is_file():
        raise GcmlmError(f"no {CONFIG}: not a mil-train model folder", folder)
    if not weights_path.is_file():
        raise GcmlmError(f"no {WEIGHTS}: a mil-train model folder holds its weights as safetensors only "
                         "(pickled .pt/.pth/.bin files are not loaded)", folder)
    try:
        saved = json.loads(config_path.read_text())
        if saved.get("format") == "gcmlm-mil/1":
            raise GcmlmError("written by an older gcmlm (format gcmlm-mil/1, without input standardisation); "
                             "train it again with mil-train")
        if saved.get("format") != FORMAT:
            raise ValueError(f"format {saved.get('format')!r}, expected {FORMAT!r}")
        config = MILConfig.from_dict(saved["config"]).check()
        in_dim = int(saved["feature_dim"])
        identity = dict(saved.get("features") or {})
    except GcmlmError as exc:
        raise GcmlmError(f"bad {CONFIG}: {exc.problem}", config_path) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GcmlmError(f"not a mil-train {CONFIG} ({one_line(exc)})", config_path) from None
    network = build_network(config, in_dim)
    network.load_state_dict(_read_weights(weights_path, network))
    network.eval()
    return MILModel(network, config, in_dim, identity, saved.get("training", {}))


def _read_weights(path: Path, network: nn.Module) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GcmlmError(f"not a readable safetensors file ({one_line(exc)})", path) from None
    expected = network.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise GcmlmError(f"weights do not match {CONFIG} (missing: {', '.join(missing[:3]) or 'none'}; "
                         f"unexpected: {', '.join(extra[:3]) or 'none'})", path)
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape or not tensor.is_floating_point():
            raise GcmlmError(f"weight {name} has shape {tuple(tensor.shape)} {tensor.dtype}, {CONFIG} implies "
                             f"{tuple(expected[name].shape)}", path)
        if not torch.isfinite(tensor).all():
            raise GcmlmError(f"weight {name} holds NaN or infinite values", path)
        if name.endswith("feature_scale") and not (tensor > 0).all():
            raise GcmlmError(f"weight {name} must be positive (it divides the features)", path)
    return state


# --- devices ----------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """auto: CUDA when torch sees a GPU, else the CPU; cuda without one is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GcmlmError("PyTorch sees no CUDA device (use --device auto or cpu)", "--device cuda")
    return torch.device(name)


def configure_threads(device: torch.device, threads: int | None) -> None:
    """A fixed thread count on the CPU: results are reproducible for a seed and a thread count."""
    if threads is not None:
        if threads < 1:
            raise GcmlmError(f"must be >= 1, got {threads}", "--threads")
        torch.set_num_threads(threads)


# --- synthetic bags (tests, benchmarks, the demo) -----------------------------------------------------

def planted_bags(n_patients: int, n_patches: int, dim: int, seed: int = 0, planted_fraction: float = 0.1,
                 shift: float = 1.5, signal_dims: int = 8) -> tuple[list[dict], np.ndarray]:
    """Synthetic patients: Gaussian patch features; in positive patients a ``planted_fraction`` of
    the patches (a contiguous block of the patch grid) is shifted by ``shift`` in ``signal_dims``
    dimensions, so mean pooling dilutes it and attention can find it. Returns per patient
    {"features", "coords", "planted" (bool mask)} and the 0/1 labels (odd patients positive)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n_patients) % 2).astype(np.int64)  # alternating: any run of patients is balanced
    side = int(math.ceil(math.sqrt(n_patches)))
    grid = np.stack(np.divmod(np.arange(n_patches), side)[::-1], axis=1).astype(np.int64) * 256
    patients = []
    for label in labels:
        features = rng.standard_normal((n_patches, dim), dtype=np.float32)
        planted = np.zeros(n_patches, bool)
        if label:
            k = max(1, round(planted_fraction * n_patches))
            start = int(rng.integers(0, n_patches - k + 1))
            planted[start:start + k] = True
            features[planted, :signal_dims] += shift
        patients.append({"features": features, "coords": grid.copy(), "planted": planted})
    return patients, labels

