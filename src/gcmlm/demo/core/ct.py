"""Synthetic abdominal CT (int16 HU) with a stomach wall / tumour label map on the same grid.

A small phantom, not an anatomy atlas: an elliptic body with subcutaneous and visceral fat, a
vertebra, a liver, and a stomach (thick layered wall, lumen with an air-fluid level) carrying a
tumour on its wall. The latent risk ``r_ct`` sets the tumour's mean HU, its texture heterogeneity
and its size, so PyRadiomics first-order, texture and shape features on label 2 see it.

Geometry is drawn in millimetres around the volume centre, so anisotropic spacing behaves like a
real scan (the wall is ~5 voxels thick in-plane and ~2 slices across). Labels come from the exact
geometry; the image is the same scene blurred by a point-spread function plus correlated noise.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

SPACING = (0.8, 0.8, 2.5)  # mm, x y z: a thin-ish portal-venous abdominal series
SIZE = (96, 96, 32)  # voxels, x y z: small so a tiny nnU-Net trains in minutes on CPU
BACKGROUND, STOMACH, TUMOUR = 0, 1, 2


@dataclass
class CtTruth:
    """What was planted, for tests and for the truth file."""

    tumour_radius_mm: float
    tumour_mean_hu: float
    tumour_heterogeneity_hu: float
    tumour_voxels: int
    wall_voxels: int


def tumour_parameters(r_ct: float) -> tuple[float, float, float]:
    """(radius mm, mean HU, heterogeneity HU) for a latent risk; all increase with ``r_ct``."""
    radius = 10.0 * float(np.exp(0.15 * r_ct))
    mean_hu = 140.0 + 14.0 * r_ct  # brighter than the enhancing wall (50-80 HU): learnable by a tiny nnU-Net
    heterogeneity = 8.0 * float(np.exp(0.45 * r_ct))
    return radius, mean_hu, heterogeneity


def _grid(size, spacing):
    """Voxel-centre coordinates in mm relative to the volume centre, as (z, y, x) arrays."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(size, spacing, strict=True)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def _smooth_noise(rng: np.random.Generator, shape, spacing, sigma_mm: float) -> np.ndarray:
    """Unit-variance Gaussian noise with correlation length ``sigma_mm`` (anisotropy-aware)."""
    noise = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    noise.SetSpacing(spacing)
    field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, sigma_mm))
    return field / max(float(field.std()), 1e-6)


def _ellipsoid(x, y, z, centre, axes, angle=0.0) -> np.ndarray:
    """Normalised radius of an ellipsoid rotated by ``angle`` in the axial plane (<= 1 inside)."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2 + (dz / axes[2]) ** 2)


@dataclass
class _Scene:
    """The voxel grid in millimetres and the HU volume the anatomy steps paint into, in order."""

    x: np.ndarray  # voxel-centre coordinates in mm from the volume centre, arrays indexed (z, y, x)
    y: np.ndarray
    z: np.ndarray
    shape: tuple[int, int, int]  # z, y, x
    spacing: tuple[float, float, float]
    hu: np.ndarray  # float32; later steps overwrite earlier ones where they overlap

    @classmethod
    def empty(cls, size, spacing) -> _Scene:
        """Air everywhere."""
        shape = (size[2], size[1], size[0])
        x, y, z = _grid(size, spacing)
        return cls(x, y, z, shape, spacing, np.full(shape, -1000.0, dtype=np.float32))

    def half_extent(self, axis: int) -> float:
        """Distance in mm from the volume centre to the outermost voxel centre along x (0) or y (1)."""
        n = self.shape[2 - axis]
        return (n - 1) / 2 * self.spacing[axis]


@dataclass
class _Body:
    a: float  # semi-axes of the body ellipse in mm (x, y)
    b: float
    interior: np.ndarray  # inside the subcutaneous fat


@dataclass
class _Stomach:
    centre: tuple[float, float, float]
    axes: tuple[float, float, float]
    angle: float  # axial-plane tilt in radians
    wall_mm: float
    outer: np.ndarray  # normalised radius of the serosa (<= 1 inside the stomach)
    inner: np.ndarray  # normalised radius of the mucosa (<= 1 inside the lumen)
    wall: np.ndarray  # the stomach wall mask (label 1 where no tumour)


def make_ct(rng: np.random.Generator, r_ct: float, size=SIZE, spacing=SPACING) -> tuple[sitk.Image, sitk.Image, CtTruth]:
    """One patient's CT and label map (same grid) and what was planted.

    The steps draw from ``rng`` in a fixed order: changing that order changes every cohort.
    """
    scene = _Scene.empty(size, spacing)
    body = _paint_body(rng, scene)
    liver = _paint_vertebra_and_liver(rng, scene, body)
    stomach = _paint_stomach(rng, scene, body, liver)
    radius, mean_hu, heterogeneity = tumour_parameters(r_ct)
    tumour = _tumour_mask(rng, scene, stomach, radius)
    _paint_tumour_texture(rng, scene, tumour, mean_hu, heterogeneity)
    hu = _scan(rng, scene)
    labels = _label_map(scene.shape, stomach.wall, tumour)
    origin = _scanner_origin(rng)
    image, label = (_as_image(array, spacing, origin) for array in (hu, labels))
    truth = CtTruth(round(radius, 4), round(mean_hu, 4), round(heterogeneity, 4),
                    int((labels == TUMOUR).sum()), int((labels == STOMACH).sum()))
    return image, label, truth


def _paint_body(rng: np.random.Generator, scene: _Scene) -> _Body:
    """An ellipse (anterior is -y in LPS) that breathes a little along z; subcutaneous and visceral fat."""
    x, y, z = scene.x, scene.y, scene.z
    body_a = rng.uniform(0.80, 0.88) * scene.half_extent(0)
    body_b = rng.uniform(0.66, 0.74) * scene.half_extent(1)
    wobble = 1 + 0.03 * np.sin(z / 15.0 + rng.uniform(0, 2 * np.pi))
    body_r = np.sqrt((x / (body_a * wobble)) ** 2 + (y / (body_b * wobble)) ** 2)
    fat_mm = rng.uniform(2.5, 5.0)
    inner_r = np.sqrt((x / (body_a * wobble - fat_mm)) ** 2 + (y / (body_b * wobble - fat_mm)) ** 2)
    body, interior = body_r <= 1, inner_r <= 1

    scene.hu[body] = -100.0  # subcutaneous fat
    scene.hu[interior] = 45.0  # muscle / bowel soft tissue
    visceral = (_smooth_noise(rng, scene.shape, scene.spacing, 3.0) > 0.6) & interior & (inner_r < 0.8)
    scene.hu[visceral] = -90.0
    return _Body(body_a, body_b, interior)


def _paint_vertebra_and_liver(rng: np.random.Generator, scene: _Scene, body: _Body) -> np.ndarray:
    """Vertebra (posterior, +y) and liver (patient right, -x): structures the network must ignore.

    Returns the liver mask (the perigastric fat stops at the liver).
    """
    x, y, z = scene.x, scene.y, scene.z
    vert_c, vert_r = (rng.uniform(-2, 2), body.b - 10.0), 5.0
    vert_d = np.hypot(x - vert_c[0], y - vert_c[1])
    scene.hu[vert_d <= vert_r] = 700.0  # cortical bone
    scene.hu[vert_d <= vert_r - 1.2] = 250.0  # cancellous bone
    liver = _ellipsoid(x, y, z, (-0.45 * body.a, -2.0, 10.0), (0.42 * body.a, 0.55 * body.b, 45.0)) <= 1
    scene.hu[liver & body.interior] = 62.0
    return liver


def _paint_stomach(rng: np.random.Generator, scene: _Scene, body: _Body, liver: np.ndarray) -> _Stomach:
    """A tilted ellipsoid on the patient's left with a thick layered wall and an air-fluid level."""
    x, y, z = scene.x, scene.y, scene.z
    centre = (rng.uniform(0.18, 0.26) * body.a, rng.uniform(-5.0, -1.0), rng.uniform(-6.0, 6.0))
    axes = (rng.uniform(13.0, 16.0), rng.uniform(9.5, 12.0), rng.uniform(26.0, 32.0))
    angle = rng.uniform(-0.4, 0.4)
    wall_mm = rng.uniform(3.6, 4.8)
    outer = _ellipsoid(x, y, z, centre, axes, angle)
    inner = _ellipsoid(x, y, z, centre, tuple(a - wall_mm for a in axes), angle)
    stomach, lumen = outer <= 1, inner <= 1
    perigastric = (outer <= 1 + rng.uniform(2.0, 3.5) / np.mean(axes[:2])) & body.interior & ~liver
    scene.hu[perigastric] = -95.0  # the fat plane that outlines the stomach on real scans
    wall = stomach & ~lumen
    scene.hu[stomach] = 10.0  # fluid
    air_level = centre[1] - rng.uniform(0.0, 0.5) * (axes[1] - wall_mm)
    scene.hu[lumen & (y < air_level)] = -980.0  # gas rises anteriorly in a supine patient
    # Layered wall: enhancing mucosa inside, muscularis outside.
    depth = np.clip((1 - outer) * np.mean(axes[:2]) / wall_mm, 0, 1)  # 0 at serosa, 1 at mucosa
    scene.hu[wall] = (50.0 + 30.0 * depth)[wall]
    return _Stomach(centre, axes, angle, wall_mm, outer, inner, wall)


def _tumour_mask(rng: np.random.Generator, scene: _Scene, stomach: _Stomach, radius: float) -> np.ndarray:
    """An irregular blob centred on the wall, thickening it outwards and a little into the lumen."""
    centre, axes, wall_mm = stomach.centre, stomach.axes, stomach.wall_mm
    # Centre: a random point at mid-wall depth on the stomach's surface, away from its poles.
    phi = rng.uniform(0, 2 * np.pi)
    t_z = centre[2] + rng.uniform(-0.35, 0.35) * axes[2]
    ring = np.sqrt(max(1 - ((t_z - centre[2]) / axes[2]) ** 2, 0.2))
    mid = 1 - wall_mm / 2 / min(axes[:2])
    px, py = axes[0] * ring * mid * np.cos(phi), axes[1] * ring * mid * np.sin(phi)
    c, s = np.cos(stomach.angle), np.sin(stomach.angle)
    t_c = (centre[0] + c * px - s * py, centre[1] + s * px + c * py, t_z)
    # Shape: a sphere (a little longer along z) with low-order bumps on its surface.
    dx, dy, dz = scene.x - t_c[0], scene.y - t_c[1], scene.z - t_c[2]
    theta, az = np.arctan2(np.hypot(dx, dy), dz), np.arctan2(dy, dx)
    bumps = sum(rng.uniform(0.04, 0.09) * np.sin(k * az + rng.uniform(0, 2 * np.pi))
                * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    t_r = np.sqrt(dx**2 + dy**2 + (dz / 1.3) ** 2) / (radius * (1 + bumps))
    return (t_r <= 1) & (stomach.outer <= 1.12) & (stomach.inner >= 0.8)


def _paint_tumour_texture(rng: np.random.Generator, scene: _Scene, tumour: np.ndarray, mean_hu: float,
                          heterogeneity: float) -> None:
    """Tumour intensities: ``mean_hu`` plus smooth texture of standard deviation ``heterogeneity``."""
    texture = _smooth_noise(rng, scene.shape, scene.spacing, 1.2)
    scene.hu[tumour] = (mean_hu + heterogeneity * texture)[tumour]


def _scan(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """The scanner: blur by the point-spread function, then correlated quantum noise; int16 HU."""
    image = sitk.GetImageFromArray(scene.hu)
    image.SetSpacing(scene.spacing)
    hu = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, 0.4))
    noise_hu = rng.uniform(9.0, 13.0)
    hu = hu + noise_hu * _smooth_noise(rng, scene.shape, scene.spacing, 0.5)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def _label_map(shape, wall: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """Labels from the exact geometry (not the blurred image); the tumour wins where it covers the wall."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[wall] = STOMACH
    labels[tumour] = TUMOUR
    return labels


def _scanner_origin(rng: np.random.Generator) -> tuple[float, float, float]:
    """A realistic, non-trivial scanner origin in mm (rounded to 0.1 mm, as headers often are)."""
    return (round(rng.uniform(-220, -160), 1), round(rng.uniform(-260, -190), 1), round(rng.uniform(-520, -380), 1))


def _as_image(array: np.ndarray, spacing, origin) -> sitk.Image:
    """A SimpleITK image on the CT grid; identity direction keeps downstream tools simple."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def write_nifti(image: sitk.Image, path: str | os.PathLike) -> None:
    sitk.WriteImage(image, os.fspath(path), useCompression=True)


def truth_dict(truth: CtTruth) -> dict:
    return asdict(truth)
