"""Encoders: strict, weights-only loading of local checkpoints, the recorded sha256, clear errors.

Every checkpoint here is written by the test itself from RANDOMLY initialised models (no real
weights can be downloaded on the test machine); what is tested is the loading path, not the model.
"""

import hashlib
import pickle

import pytest
import torch

from gcmlm.common.errors import GcmlmError
from gcmlm.pathology.core.encoders import IMAGENET_MEAN, RANDOM, build_encoder, import_timm, read_state_dict


def _random_state_dict(name, path, **kwargs):
    """Save a RANDOM-weights state_dict for timm model ``name``; returns it."""
    timm = import_timm()  # without timm's import-time FutureWarning
    torch.manual_seed(123)
    state = timm.create_model(name, pretrained=False, **kwargs).state_dict()
    torch.save(state, path)
    return state


def test_timm_checkpoint_loads_strictly_and_records_sha256(tmp_path):
    ckpt = tmp_path / "random-test_vit.pth"
    saved = _random_state_dict("test_vit", ckpt, num_classes=0)
    enc = build_encoder("test_vit", ckpt)
    loaded = enc.model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert enc.checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert enc.attrs()["weights"] == "checkpoint" and enc.attrs()["checkpoint"] == ckpt.name
    assert enc.transform.input_size == 160 and enc.dim == 64
    with torch.inference_mode():
        assert enc.model(torch.zeros(2, 3, 160, 160)).shape == (2, 64)


def test_timm_classifier_keys_are_dropped_everything_else_strict(tmp_path):
    ckpt = tmp_path / "random-test_vit-with-head.pth"
    saved = _random_state_dict("test_vit", ckpt, num_classes=10)
    enc = build_encoder("test_vit", ckpt)
    assert enc.dropped_keys == ["head.weight", "head.bias"]
    assert torch.equal(enc.model.state_dict()["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])


def test_resnet50_trunc_loads_truncated_and_full_resnet50_checkpoints(tmp_path):
    import torchvision

    torch.manual_seed(7)
    full = torchvision.models.resnet50(weights=None).state_dict()  # RANDOM weights, torchvision keys
    torch.save(full, tmp_path / "random-resnet50-full.pth")
    enc = build_encoder("resnet50_trunc", tmp_path / "random-resnet50-full.pth")
    assert enc.dim == 1024 and enc.transform.input_size == 224 and enc.transform.mean == IMAGENET_MEAN
    assert sorted({k.split(".")[0] for k in enc.dropped_keys}) == ["fc", "layer4"]
    assert torch.equal(enc.model.trunk.state_dict()["layer3.5.conv3.weight"], full["layer3.5.conv3.weight"])

    trunk_only = {k: v for k, v in full.items() if not k.startswith(("layer4.", "fc."))}
    torch.save(trunk_only, tmp_path / "random-resnet50-trunc.pth")
    enc2 = build_encoder("resnet50_trunc", tmp_path / "random-resnet50-trunc.pth")
    assert enc2.dropped_keys == []
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        a, b = enc.model(x), enc2.model(x)
    assert a.shape == (2, 1024) and torch.equal(a, b)


def test_checkpoint_with_wrong_keys_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "random-test_resnet.pth"
    _random_state_dict("test_resnet", ckpt, num_classes=0)
    with pytest.raises(GcmlmError, match="does not match the encoder's architecture: .*missing key"):
        build_encoder("test_vit", ckpt)


def test_checkpoint_with_wrong_shapes_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "random-test_vit.pth"
    state = _random_state_dict("test_vit", ckpt, num_classes=0)
    state["pos_embed"] = torch.zeros(1, 3, 64)
    torch.save(state, ckpt)
    with pytest.raises(GcmlmError, match=r"wrong shape, e.g. pos_embed"):
        build_encoder("test_vit", ckpt)


class _NotATensor:
    pass


def test_checkpoint_needing_arbitrary_unpickling_is_refused(tmp_path):
    ckpt = tmp_path / "pickled-object.pth"
    with open(ckpt, "wb") as fh:
        pickle.dump({"weight": _NotATensor()}, fh)
    with pytest.raises(GcmlmError, match="not a loadable weights-only checkpoint"):
        build_encoder("test_vit", ckpt)


def test_missing_checkpoint_needs_explicit_random_weights(tmp_path):
    with pytest.raises(GcmlmError, match="needs --checkpoint .* --allow-random-weights"):
        build_encoder("test_vit")
    with pytest.raises(GcmlmError, match="no such checkpoint file"):
        build_encoder("test_vit", tmp_path / "absent.pth")
    enc = build_encoder("test_vit", allow_random_weights=True)
    assert enc.attrs()["weights"] == RANDOM and enc.attrs()["checkpoint_sha256"] == RANDOM


def test_unknown_encoder_name_is_a_clear_error():
    with pytest.raises(GcmlmError, match="unknown encoder 'not_a_model'"):
        build_encoder("not_a_model", allow_random_weights=True)


@pytest.mark.slow  # ViT-L on CPU: building it and two patches take ~30 s here
def test_uni_v1_architecture_gives_1024_d_features():
    """UNI's ViT-L/16 with RANDOM weights (the real ones are gated): architecture and output dim."""
    enc = build_encoder("uni_v1", allow_random_weights=True)
    assert enc.dim == 1024 and enc.transform.input_size == 224
    assert enc.model.patch_embed.patch_size == (16, 16) and len(enc.model.blocks) == 24
    assert enc.model.blocks[0].ls1.gamma.shape == (1024,)  # init_values=1e-5: LayerScale present
    with torch.inference_mode():
        out = enc.model(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 1024) and torch.isfinite(out).all()


def test_random_bytes_checkpoint_message_does_not_invite_unsafe_loading(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(GcmlmError) as err:
        read_state_dict(path)
    assert err.value.problem == "not a loadable weights-only checkpoint (a PyTorch state dict or a safetensors file)"


def test_timm_import_leaves_no_future_warning():
    """patch-embed's stderr used to carry timm's torch.jit.interface FutureWarning on every call."""
    import subprocess
    import sys

    code = "from gcmlm.pathology.core.encoders import import_timm; import_timm()"
    result = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
