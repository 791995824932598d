"""patch-embed end to end on real slides: features equal a patch-by-patch reference computation,
block reads equal single-patch reads, CPU determinism, resume, empty coords and clear errors.

Encoders here use RANDOM weights saved to a checkpoint by the test itself (no real weights can be
downloaded on the test machine), so the real strict loading path runs; the features only serve to
compare two computations of the same function.
"""

import json
import logging
import os

import h5py
import numpy as np
import openslide
import pytest
import torch
from PIL import Image

from gcmlm.cli import main
from gcmlm.pathology.core.clam_h5 import read_coords, read_features, write_coords
from gcmlm.pathology.core.encoders import build_encoder, import_timm
from gcmlm.pathology.core.patch_loader import fit_shared_memory, plan_reads, read_patches
from gcmlm.pathology.core.slide import open_slide
from gcmlm.pathology.core.tiff_tiles import open_tile_reader
from gcmlm.pathology.slide_pool import pool_slides

ENCODER = "test_resnet"  # timm's 0.4 M-parameter ResNet for tests; input 160 px


@pytest.fixture(scope="module")
def cmu(shared_data):
    return shared_data / "wsi" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A RANDOM-weights checkpoint of the test encoder, written here to exercise strict loading."""
    timm = import_timm()  # without timm's import-time FutureWarning
    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("ckpt") / "random-test_resnet.pth"
    torch.save(timm.create_model(ENCODER, pretrained=False, num_classes=0).state_dict(), path)
    return path


def clam_coords(path, coords, patch_size, level=0, **extra):
    """A coords file with CLAM's attrs, as create_patches_fp writes them."""
    attrs = {"patch_size": np.int64(patch_size), "patch_level": np.int64(level),
             "downsample": np.array([1.0, 1.0]), "name": path.stem, **extra}
    write_coords(path, np.asarray(coords, dtype=np.int64), attrs)
    return path


# Two full rows of neighbours, an overlapping patch, a lone patch and one hanging off the edge.
COORDS_256 = [(x, y) for y in (512, 768) for x in range(256, 1536, 256)] + [(384, 640), (1800, 2500), (2100, 100)]


def embed(slide, coords, out, checkpoint, *extra):
    return main(["patch-embed", "--slide", str(slide), "--coords", str(coords), "--out", str(out),
                 "--encoder", ENCODER, "--checkpoint", str(checkpoint), "--device", "cpu", "--batch-size", "4",
                 *extra])


def reference(slide_path, coords, read_size, size, checkpoint):
    """Patch by patch, as CLAM does: openslide.read_region -> RGB -> PIL resize -> ToTensor/Normalize."""
    from torchvision.transforms import functional as TF

    enc = build_encoder(ENCODER, checkpoint)
    osr = openslide.OpenSlide(str(slide_path))
    feats = []
    for x, y in coords:
        rgba = osr.read_region((int(x), int(y)), 0, (read_size, read_size))
        # On white, like the shared reader (CLAM's convert('RGB') would make transparency black).
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        t = TF.normalize(TF.to_tensor(img), enc.transform.mean, enc.transform.std)
        with torch.inference_mode():
            feats.append(enc.model(t[None])[0].numpy())
    return np.stack(feats)


def test_features_equal_patch_by_patch_reference_at_input_size(cmu, checkpoint, tmp_path):
    coords = np.array(COORDS_256) // 256 * 160  # 160 px patches: the encoder's input size, no resize
    cfile = clam_coords(tmp_path / "CMU-1-Small-Region.h5", coords, 160)
    assert embed(cmu, cfile, tmp_path / "out", checkpoint, "--num-workers", "0") == 0
    got = read_features(tmp_path / "out" / "h5_files" / "CMU-1-Small-Region.h5")
    assert got.features.shape == (len(coords), 96) and got.features.dtype == np.float32
    np.testing.assert_array_equal(got.coords, coords)
    ref = reference(cmu, coords, 160, 160, checkpoint)
    np.testing.assert_allclose(got.features, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_features_match_reference_with_pil_resize(cmu, checkpoint, tmp_path):
    cfile = clam_coords(tmp_path / "CMU-1-Small-Region.h5", COORDS_256, 256)
    assert embed(cmu, cfile, tmp_path / "out", checkpoint, "--num-workers", "0") == 0
    got = read_features(tmp_path / "out" / "h5_files" / "CMU-1-Small-Region.h5")
    np.testing.assert_array_equal(got.coords, COORDS_256)
    ref = reference(cmu, COORDS_256, 256, 160, checkpoint)
    # On CPU the batch is resized in uint8 with torch's PIL-compatible filter: the same pixels as
    # PIL's up to rare off-by-one rounding, so the features agree to fp32 noise.
    err = np.abs(got.features - ref).max() / np.abs(ref).max()
    assert err < 5e-4, err


def test_block_reads_equal_single_patch_reads(cmu):
    slide = open_slide(cmu)
    coords = np.array(COORDS_256)
    plan = plan_reads({"patch_size": 256, "patch_level": 0}, slide.level_downsamples, "x.h5")
    singles = np.stack([slide.read_region((int(x), int(y)), 0, 256) for x, y in coords])
    np.testing.assert_array_equal(read_patches(slide, coords, plan), singles)
    tiles = open_tile_reader(slide)  # SVS: tiles decoded directly, checked against OpenSlide
    assert tiles is not None
    np.testing.assert_array_equal(read_patches(tiles, coords, plan), singles)


def test_readers_fit_a_containers_small_shared_memory(monkeypatch, caplog):
    """Docker's default /dev/shm is 64 MB; batches in flight must fit, or workers die of SIGBUS."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(64 << 20, 0, 64 << 20))
    mb = 1 << 20
    assert fit_shared_memory(8, 4, 4 * mb) == (8, 1)  # 8 x 1 x 4 MB = half of 64 MB
    assert fit_shared_memory(8, 4, 50 * mb) == (0, 1)  # a 256-patch batch of 256 px: read in-process
    assert "docker --shm-size" in caplog.text
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(24 << 30, 0, 24 << 30))
    assert fit_shared_memory(8, 4, 50 * mb) == (8, 4)


def test_direct_tile_reader_equals_openslide_on_every_level(tmp_path):
    """Unaligned regions, edges, outside the image, all levels of a JPEG pyramid (tiles 128 px)."""
    import tifffile

    rng = np.random.default_rng(3)
    base = np.kron(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8), np.ones((20, 20, 1), np.uint8))
    path = tmp_path / "pyr.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(128, 128), compression="jpeg", resolution=(4e4, 4e4), resolutionunit="CENTIMETER")
        for k in (2, 4):
            tif.write(np.ascontiguousarray(base[::k, ::k]), tile=(128, 128), compression="jpeg", subfiletype=1)
    slide = open_slide(path)
    tiles = open_tile_reader(slide)
    assert tiles is not None and slide.level_downsamples == [1.0, 2.0, 4.0]
    for level, ds in enumerate(slide.level_downsamples):
        for x, y, w, h in [(0, 0, 300, 200), (100 * ds, 37 * ds, 256, 256), (1300, 900, 300, 300),
                           (-64 * ds, -10 * ds, 100, 90), (1396 - 5 * ds, 996 - 7 * ds, 64, 64)]:
            np.testing.assert_array_equal(tiles.read_region((int(x), int(y)), level, (w, h)),
                                          slide.read_region((int(x), int(y)), level, (w, h)),
                                          err_msg=f"level {level} region {(x, y, w, h)}")


def test_outputs_are_deterministic_whatever_the_workers_and_record_provenance(cmu, checkpoint, tmp_path):
    cfile = clam_coords(tmp_path / "CMU-1-Small-Region.h5", COORDS_256, 256)
    assert embed(cmu, cfile, tmp_path / "a", checkpoint, "--num-workers", "0") == 0
    assert embed(cmu, cfile, tmp_path / "b", checkpoint, "--num-workers", "2") == 0
    a = read_features(tmp_path / "a" / "h5_files" / "CMU-1-Small-Region.h5")
    b = read_features(tmp_path / "b" / "h5_files" / "CMU-1-Small-Region.h5")
    np.testing.assert_array_equal(a.features, b.features)
    pt = torch.load(tmp_path / "a" / "pt_files" / "CMU-1-Small-Region.pt", weights_only=True)
    np.testing.assert_array_equal(pt.numpy(), a.features)
    import hashlib

    assert a.attrs["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert a.attrs["encoder"] == ENCODER and a.attrs["weights"] == "checkpoint" and a.attrs["precision"] == "fp32"
    transform = json.loads(a.attrs["transform"])
    assert transform["resize"] == 160 and transform["mean"] == [0.5, 0.5, 0.5] and transform["read_size"] == 256
    with h5py.File(tmp_path / "a" / "h5_files" / "CMU-1-Small-Region.h5") as h5:
        assert h5["coords"].attrs["patch_size"] == 256 and h5["coords"].attrs["patch_level"] == 0  # CLAM's attrs kept


def test_rerun_skips_complete_output_and_redoes_an_interrupted_one(cmu, checkpoint, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gcmlm")
    cfile = clam_coords(tmp_path / "CMU-1-Small-Region.h5", COORDS_256[:3], 256)
    out = tmp_path / "out"
    h5 = out / "h5_files" / "CMU-1-Small-Region.h5"
    pt = out / "pt_files" / "CMU-1-Small-Region.pt"
    assert embed(cmu, cfile, out, checkpoint, "--num-workers", "0") == 0
    before = h5.stat().st_mtime_ns, pt.stat().st_mtime_ns
    assert embed(cmu, cfile, out, checkpoint, "--num-workers", "0") == 0
    assert (h5.stat().st_mtime_ns, pt.stat().st_mtime_ns) == before
    assert "already in" in caplog.text
    # Interrupted after the .pt: no .h5, so it is recomputed.
    h5.unlink()
    assert embed(cmu, cfile, out, checkpoint, "--num-workers", "0") == 0
    assert read_features(h5).features.shape == (3, 96)
    # Other random weights: not the same output, so it is recomputed.
    before = h5.stat().st_mtime_ns
    assert main(["patch-embed", "--slide", str(cmu), "--coords", str(cfile), "--out", str(out), "--encoder", ENCODER,
                 "--allow-random-weights", "--device", "cpu", "--num-workers", "0"]) == 0
    assert h5.stat().st_mtime_ns != before and read_features(h5).attrs["weights"] == "random"
    assert not [p for p in (out / "h5_files").iterdir() if p.name.startswith(".")]  # no temp files left


def test_zero_patches_give_valid_empty_outputs(cmu, checkpoint, tmp_path):
    cfile = clam_coords(tmp_path / "CMU-1-Small-Region.h5", np.zeros((0, 2)), 256)
    assert embed(cmu, cfile, tmp_path / "out", checkpoint) == 0
    h5 = tmp_path / "out" / "h5_files" / "CMU-1-Small-Region.h5"
    assert read_features(h5).features.shape == (0, 96)
    assert torch.load(tmp_path / "out" / "pt_files" / "CMU-1-Small-Region.pt", weights_only=True).shape == (0, 96)
    _, counts, empty = pool_slides([h5])
    assert counts == {"CMU-1-Small-Region": 0} and empty == ["CMU-1-Small-Region"]


def test_target_mpp_grid_reads_patch_level_size_and_resizes(tmp_path, checkpoint):
    """A 3-level JPEG pyramid; grid at 2x the level-0 mpp: 512 px read at level 0 -> 160."""
    import tifffile

    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), np.ones((32, 32, 1), np.uint8))
    path = tmp_path / "pyr.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(256, 256), compression="jpeg", resolution=(1e4 / 0.25, 1e4 / 0.25),
                  resolutionunit="CENTIMETER")
        for k in (2, 4):
            tif.write(base[::k, ::k], tile=(256, 256), compression="jpeg", subfiletype=1)
    slide = open_slide(path)
    assert slide.level_downsamples == [1.0, 2.0, 4.0]
    attrs = {"patch_size": 256, "patch_level": 1, "target_patch_size": 256, "patch_size_level0": 512}
    plan = plan_reads(attrs, slide.level_downsamples, "x.h5")
    assert (plan.level, plan.read_size, plan.patch_size) == (1, 256, 256)
    trident = plan_reads({"patch_size": 256, "patch_size_level0": 1024}, slide.level_downsamples, "x.h5")
    assert (trident.level, trident.read_size) == (2, 256)
    coords = [(0, 0), (512, 0), (1024, 512)]
    cfile = clam_coords(tmp_path / "pyr.h5", coords, 256, level=1, target_patch_size=np.int64(256),
                        patch_size_level0=np.int64(512))
    assert embed(path, cfile, tmp_path / "out", checkpoint, "--num-workers", "0") == 0
    got = read_features(tmp_path / "out" / "h5_files" / "pyr.h5")
    enc = build_encoder(ENCODER, checkpoint)
    level1 = [slide.read_region(c, 1, 256) for c in coords]
    from torchvision.transforms import functional as TF

    ref = []
    for rgb in level1:
        img = Image.fromarray(rgb).resize((160, 160), Image.BILINEAR)
        with torch.inference_mode():
            ref.append(enc.model(TF.normalize(TF.to_tensor(img), enc.transform.mean, enc.transform.std)[None])[0])
    ref = torch.stack(ref).numpy()
    assert np.abs(got.features - ref).max() / np.abs(ref).max() < 5e-4


@pytest.mark.parametrize("flags, message", [
    (["--precision", "bf16"], "--precision bf16 is for GPUs"),
    (["--checkpoint", "/nonexistent/uni.bin"], "no such checkpoint file"),
    ([], "needs --checkpoint"),
])
def test_bad_options_are_one_line_errors(cmu, tmp_path, capsys, flags, message):
    cfile = clam_coords(tmp_path / "c.h5", COORDS_256[:2], 256)
    code = main(["patch-embed", "--slide", str(cmu), "--coords", str(cfile), "--out", str(tmp_path / "out"),
                 "--encoder", ENCODER, "--device", "cpu", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("gcmlm patch-embed: error:")
    assert not (tmp_path / "out").exists()


def test_unreadable_slide_is_a_clear_error_and_leaves_no_output(shared_data, tmp_path, capsys, checkpoint):
    slide = shared_data / "wsi" / "unopenable.tiff"
    cfile = clam_coords(tmp_path / "unopenable.h5", COORDS_256[:2], 256)
    assert embed(slide, cfile, tmp_path / "out", checkpoint) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("gcmlm patch-embed: error:") and "unopenable.tiff: not a readable slide" in err
    assert not (tmp_path / "out").exists()


def test_coords_without_clam_attrs_is_a_clear_error(cmu, tmp_path, capsys, checkpoint):
    write_coords(tmp_path / "c.h5", np.zeros((2, 2)), {})
    assert embed(cmu, tmp_path / "c.h5", tmp_path / "out", checkpoint) == 2
    assert "no 'patch_size' attribute" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_gpu_is_a_clear_error(cmu, tmp_path, capsys, checkpoint):
    cfile = clam_coords(tmp_path / "c.h5", COORDS_256[:2], 256)
    assert main(["patch-embed", "--slide", str(cmu), "--coords", str(cfile), "--out", str(tmp_path / "o"),
                 "--encoder", ENCODER, "--checkpoint", str(checkpoint), "--device", "cuda"]) == 2
    assert "PyTorch sees no CUDA device" in capsys.readouterr().err


def test_on_wsi_tile_coords(cmu, checkpoint, tmp_path):
    """The stage chain: wsi-tile's coords file goes straight into patch-embed."""
    # bwh_biopsy: CLAM's default a_t (100 reference patches) is larger than this small region
    assert main(["wsi-tile", "--slide", str(cmu), "--out", str(tmp_path / "tiles"), "--preset", "bwh_biopsy"]) == 0
    cfile = tmp_path / "tiles" / "patches" / "CMU-1-Small-Region.h5"
    coords, _ = read_coords(cfile)
    assert len(coords) > 0
    coords = coords[:6]
    write_coords(tmp_path / "CMU-1-Small-Region.h5", coords, read_coords(cfile)[1])  # a subset, to stay fast
    assert embed(cmu, tmp_path / "CMU-1-Small-Region.h5", tmp_path / "out", checkpoint, "--num-workers", "0") == 0
    got = read_features(tmp_path / "out" / "h5_files" / "CMU-1-Small-Region.h5")
    np.testing.assert_array_equal(got.coords, coords)
    assert got.features.shape == (6, 96) and np.isfinite(got.features).all()


def test_demo_cohort_slides(demo_cohort, checkpoint, tmp_path):
    pytest.importorskip("gcmlm.demo.demo_cohort")
    slides = sorted(p for p in demo_cohort.rglob("*") if p.suffix in (".tiff", ".tif", ".svs"))[:2]
    assert slides
    for slide in slides:
        assert main(["wsi-tile", "--slide", str(slide), "--out", str(tmp_path / "tiles")]) == 0
        cfile = tmp_path / "tiles" / "patches" / f"{slide.stem}.h5"
        coords, attrs = read_coords(cfile)
        sub = tmp_path / "sub" / f"{slide.stem}.h5"
        write_coords(sub, coords[:8], attrs)
        assert embed(slide, sub, tmp_path / "out", checkpoint, "--num-workers", "0") == 0
        got = read_features(tmp_path / "out" / "h5_files" / f"{slide.stem}.h5")
        np.testing.assert_array_equal(got.coords, coords[:8])
        assert got.features.shape == (min(8, len(coords)), 96) and np.isfinite(got.features).all()
    assert os.listdir(tmp_path / "out" / "pt_files")


def test_python_api_runs_the_branch_like_the_cli(cmu, tmp_path, monkeypatch):
    """The README's example: tile, embed (random weights) and pool one slide from Python, no Namespace;
    the outputs equal the command line's."""
    from gcmlm.pathology.patch_embed import embed_slide
    from gcmlm.pathology.slide_pool import pool_features
    from gcmlm.pathology.wsi_tile import GridSpec, resolve_settings, tile_slide, write_outputs

    monkeypatch.chdir(tmp_path)
    with open_slide(cmu) as slide:
        tiles = tile_slide(slide, GridSpec(patch_size=256), resolve_settings("bwh_biopsy"))
    coords_h5 = write_outputs("out/tiles", tiles)
    embedded = embed_slide(slide.path, coords_h5, ENCODER, "out/features", allow_random_weights=True,
                           device="cpu", num_workers=0)
    pooled = pool_features([embedded.h5_path])
    assert len(tiles.coords) == embedded.n_patches == pooled.patients["path_n_patches"].item() == 50

    assert main(["wsi-tile", "-q", "--slide", str(cmu), "--out", "cli/tiles", "--preset", "bwh_biopsy"]) == 0
    assert main(["patch-embed", "-q", "--slide", str(cmu), "--coords", "cli/tiles/patches/CMU-1-Small-Region.h5",
                 "--out", "cli/features", "--encoder", ENCODER, "--allow-random-weights", "--device", "cpu",
                 "--num-workers", "0"]) == 0
    assert main(["slide-pool", "-q", "--features", "cli/features/h5_files/CMU-1-Small-Region.h5",
                 "--out", "cli/table.csv"]) == 0
    np.testing.assert_array_equal(read_coords("cli/tiles/patches/CMU-1-Small-Region.h5")[0], tiles.coords)
    cli = read_features("cli/features/h5_files/CMU-1-Small-Region.h5")
    np.testing.assert_array_equal(cli.features, read_features(embedded.h5_path).features)
    from gcmlm.common.tables import write_patient_table

    write_patient_table(pooled.patients, "api_table.csv")
    assert (tmp_path / "api_table.csv").read_bytes() == (tmp_path / "cli" / "table.csv").read_bytes()


@pytest.mark.parametrize("workers", [0, 1])
def test_undecodable_tile_is_an_error_naming_slide_and_region(tmp_path, capsys, checkpoint, workers):
    """A damaged tile is never embedded as a blank patch: one line naming the slide and the region,
    also when a reader worker process meets it."""
    import tifffile

    from gcmlm.demo.core.wsi import write_synthetic_slide

    slide = tmp_path / "damaged.tiff"
    write_synthetic_slide(slide, 1024, 768, mpp=0.5, seed=2)
    data = bytearray(slide.read_bytes())
    with tifffile.TiffFile(slide) as tif:
        page = tif.pages[0]
        index = 1 * (1024 // page.tilewidth) + 2  # the tile at level-0 (512, 256)
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    data[offset + 40:offset + count] = np.random.default_rng(0).bytes(count - 40)
    slide.write_bytes(bytes(data))
    cfile = clam_coords(tmp_path / "damaged.h5", [(512, 256)], 256)
    assert embed(slide, cfile, tmp_path / "out", checkpoint, "--num-workers", str(workers)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"gcmlm patch-embed: error: {slide}: cannot read region (512, 256) level 0")
    assert not (tmp_path / "out").exists()
