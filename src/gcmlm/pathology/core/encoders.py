"""Patch encoders: the architecture, its input transform and strict loading of local weights.

``uni_v1`` and ``resnet50_trunc`` are built exactly as CLAM builds them (models/builder.py):
UNI is timm's ViT-L/16 with init_values=1e-5 and dynamic image size; resnet50_trunc is timm's
ResNet-50 cut after layer3 with adaptive average pooling (1024-d). Any other name is passed to
``timm.create_model`` with its own pretrained_cfg transform.

Weights only come from a local file, loaded with ``torch.load(weights_only=True)`` (or
safetensors) and ``load_state_dict(strict=True)``: a checkpoint that does not fit is an error,
never a half-initialised model. The only keys dropped are those the architecture removes on
purpose (ResNet-50's layer4 and fc for resnet50_trunc, a timm model's classifier), and they are
logged. Random weights need an explicit opt-in and are recorded as such.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gcmlm.common.errors import GcmlmError

log = logging.getLogger("gcmlm")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"


@dataclass(frozen=True)
class Transform:
    """What the encoder expects: square input size (None: keep the patch size), mean/std on [0, 1]."""

    input_size: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # torch.nn.functional.interpolate mode, antialiased like PIL

    def describe(self) -> dict:
        return {"resize": self.input_size, "interpolation": self.interpolation, "antialias": True,
                "mean": list(self.mean), "std": list(self.std)}


@dataclass
class Encoder:
    name: str
    model: nn.Module
    transform: Transform
    dim: int
    weights: str  # "checkpoint" or "random"
    checkpoint_sha256: str  # hex digest, or "random"
    checkpoint: str | None = None
    dropped_keys: list[str] = field(default_factory=list)

    def attrs(self) -> dict:
        return {"encoder": self.name, "weights": self.weights, "checkpoint_sha256": self.checkpoint_sha256,
                "checkpoint": os.path.basename(self.checkpoint) if self.checkpoint else RANDOM,
                "feature_dim": self.dim}


def import_timm():
    """timm, imported without the FutureWarning its hrnet module triggers at import time (it
    decorates a class with ``torch.jit.interface``, deprecated in recent PyTorch). The filter is
    only for that import; timm is cached afterwards, so the warning cannot come back later."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.interface.* is deprecated", category=FutureWarning)
        import timm
        import timm.data

    return timm


class TruncatedResNet50(nn.Module):
    """CLAM's resnet50_trunc: ResNet-50 up to layer3 (1024 channels), then global average pooling."""

    def __init__(self):
        super().__init__()
        timm = import_timm()
        self.trunk = timm.create_model("resnet50", pretrained=False, features_only=True, out_indices=(3,))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x)[-1]).flatten(1)


@dataclass(frozen=True)
class _Builder:
    build: Callable[[], nn.Module]
    transform: Callable[[nn.Module], Transform]
    weights_target: Callable[[nn.Module], nn.Module]  # the module the checkpoint's keys address
    dropped_prefixes: Callable[[nn.Module], tuple[str, ...]]


def _build_uni() -> nn.Module:
    timm = import_timm()

    return timm.create_model("vit_large_patch16_224", img_size=224, patch_size=16, init_values=1e-5,
                             num_classes=0, dynamic_img_size=True)


def _build_timm(name: str) -> nn.Module:
    timm = import_timm()

    if not timm.is_model(name):
        known = ", ".join(sorted(BUILTIN))
        raise GcmlmError(f"unknown encoder '{name}': not one of {known} and not a timm model name")
    return timm.create_model(name, pretrained=False, num_classes=0)


def _timm_transform(model: nn.Module) -> Transform:
    cfg = import_timm().data.resolve_data_config({}, model=model)
    interp = cfg.get("interpolation", "bilinear")
    return Transform(int(cfg["input_size"][-1]), tuple(cfg["mean"]), tuple(cfg["std"]),
                     interp if interp in ("bilinear", "bicubic") else "bilinear")


def _timm_classifier(model: nn.Module) -> tuple[str, ...]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier")
    names = classifier if isinstance(classifier, (list, tuple)) else [classifier] if classifier else []
    return tuple(f"{n}." for n in names)


BUILTIN: dict[str, _Builder] = {
    # UNI (Chen et al. 2024): ImageNet mean/std at 224 px, as in UNI's README and CLAM.
    "uni_v1": _Builder(_build_uni, lambda m: Transform(224, IMAGENET_MEAN, IMAGENET_STD),
                       lambda m: m, lambda m: ()),
    # CLAM resizes every patch to 224 (extract_features_fp --target_patch_size 224).
    "resnet50_trunc": _Builder(TruncatedResNet50, lambda m: Transform(224, IMAGENET_MEAN, IMAGENET_STD),
                               lambda m: m.trunk, lambda m: ("layer4.", "fc.")),
}


def _builder(name: str) -> _Builder:
    if name in BUILTIN:
        return BUILTIN[name]
    return _Builder(lambda: _build_timm(name), _timm_transform, lambda m: m, _timm_classifier)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, without executing pickled code (weights_only / safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such checkpoint file", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():  # the refusal below says all there is to say about a bad file
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises pickle, zip and runtime errors alike
        # torch's own text advises weights_only=False, i.e. running pickled code from the file: never repeat it.
        raise GcmlmError("not a loadable weights-only checkpoint (a PyTorch state dict or a safetensors file)",
                         path) from None
    # Lightning/DeiT-style wrappers keep the weights one level down.
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = [state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)]
        state = inner[0] if inner else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GcmlmError("checkpoint is not a state_dict (a mapping of parameter names to tensors)", path)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_weights(target: nn.Module, state: dict[str, torch.Tensor], dropped_prefixes: tuple[str, ...],
                 path: str | os.PathLike) -> list[str]:
    """Strict load; returns the keys dropped on purpose. Any other mismatch is a GcmlmError."""
    dropped = [k for k in state if k.startswith(dropped_prefixes)] if dropped_prefixes else []
    state = {k: v for k, v in state.items() if k not in set(dropped)}
    expected = target.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) e.g. {', '.join(unexpected[:3])}")
        raise GcmlmError(f"checkpoint does not match the encoder's architecture: {'; '.join(parts)}", path)
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise GcmlmError(f"checkpoint does not match the encoder's architecture: {len(wrong)} tensor(s) of the "
                         f"wrong shape, e.g. {k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}", path)
    target.load_state_dict(state, strict=True)
    if dropped:
        log.info("dropped %d checkpoint key(s) the encoder removes on purpose (%s)", len(dropped),
                 ", ".join(sorted({k.split('.')[0] for k in dropped})))
    return dropped


def build_encoder(name: str, checkpoint: str | os.PathLike | None = None,
                  allow_random_weights: bool = False, checkpoint_sha256: str | None = None) -> Encoder:
    """The encoder in eval mode on CPU, with weights from ``checkpoint`` (or random, if allowed).

    ``checkpoint_sha256``: the checkpoint's digest when the caller has already computed it.
    """
    if checkpoint is None and not allow_random_weights:
        raise GcmlmError(f"encoder '{name}' needs --checkpoint (a local weights file); pass "
                         "--allow-random-weights to embed with untrained weights (for tests only)")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise GcmlmError("no such checkpoint file", checkpoint)
    builder = _builder(name)
    torch.manual_seed(0)  # random weights are at least reproducible
    model = builder.build()
    dropped: list[str] = []
    if checkpoint is not None:
        state = read_state_dict(checkpoint)
        dropped = load_weights(builder.weights_target(model), state, builder.dropped_prefixes(model), checkpoint)
        digest, weights = checkpoint_sha256 or sha256_file(checkpoint), "checkpoint"
    else:
        log.warning("encoder %s has RANDOM weights (--allow-random-weights): features are not meaningful", name)
        digest, weights = RANDOM, RANDOM
    model.eval().requires_grad_(False)
    transform = builder.transform(model)
    dim = feature_dim(model, transform)
    return Encoder(name, model, transform, dim, weights, digest,
                   None if checkpoint is None else os.fspath(checkpoint), dropped)


def feature_dim(model: nn.Module, transform: Transform) -> int:
    dim = getattr(model, "num_features", None)
    if isinstance(model, TruncatedResNet50):
        return int(model.trunk.feature_info.channels()[-1])
    if isinstance(dim, int) and getattr(model, "num_classes", 0) == 0:
        return dim
    size = transform.input_size or 224
    with torch.inference_mode():
        return int(model(torch.zeros(1, 3, size, size)).shape[-1])
