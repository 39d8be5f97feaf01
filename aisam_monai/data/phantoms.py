# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Synthetic volumes that stand in for ACDC cine MRI and Synapse abdominal CT.

All arrays are (Z, H, W): slices, rows (anterior at the top), columns (patient left on the right).
Shapes are drawn in millimetres on the voxel grid, so a phantom keeps its anatomy at any matrix size.
Everything is vectorised over whole slice stacks (no loops over voxels or slices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "CardiacPatient",
    "cardiac_patient",
    "cardiac_volume",
    "AbdomenCase",
    "abdomen_case",
    "abdomen_volume",
    "random_rotation",
]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (determinant +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _smooth_field(
    rng: np.random.Generator, coords: tuple[np.ndarray, ...], n: int, wavelengths: tuple[float, float]
) -> np.ndarray:
    """Sum of ``n`` random plane waves (unit variance) evaluated on broadcastable mm ``coords``.

    ``sin(a + r) = sin(a) cos(r) + cos(a) sin(r)`` with ``a`` the first coordinate's term keeps the
    transcendental work on the small broadcast factors when the coordinates are separable.
    """
    out = 0.0
    for _ in range(n):
        direction = rng.normal(size=len(coords))
        direction *= 2 * np.pi / rng.uniform(*wavelengths) / np.linalg.norm(direction)
        a = float(direction[0]) * coords[0] + float(rng.uniform(0, 2 * np.pi))
        r = sum(float(d) * c for d, c in zip(direction[1:], coords[1:]))
        out = out + np.sin(a) * np.cos(r) + np.cos(a) * np.sin(r)
    return out * np.sqrt(2.0 / n)


# ----------------------------------------------------------------------------------------------------
# ACDC-like cine MRI
# ----------------------------------------------------------------------------------------------------


@dataclass
class CardiacPatient:
    """Per-patient geometry shared by the ED and ES frames (mm unless stated)."""

    rows: int
    cols: int
    pixel: float
    slices: int
    slice_spacing: float
    first_slice: float  # position of slice 0 relative to the mitral plane (negative: atrial level)
    long_axis: float  # base-to-apex length of the LV at ED
    heart_offset: tuple[float, float]
    rotation: float  # in-plane rotation of the anatomy (rad)
    body: tuple[float, float]  # half-axes of the chest (mm)
    lv_radius: float  # ED cavity radius at the base
    wall: float  # ED wall thickness
    ellipticity: float
    rv_angle: float
    rv_size: float
    es_factor: float  # ES cavity radius / ED cavity radius
    gain: float
    noise: float
    seed: int


def cardiac_patient(rng: np.random.Generator) -> CardiacPatient:
    """Draw one patient: matrix 150-260 px, pixel 1.2-1.8 mm, 6-12 slices 5-10 mm apart."""
    pixel = rng.uniform(1.2, 1.8)
    fov = rng.uniform(290, 360)
    rows = int(np.clip(round(fov * rng.uniform(0.8, 1.0) / pixel), 150, 260))
    cols = int(np.clip(round(fov / pixel), 150, 260))
    spacing = rng.choice([5.0, 6.5, 8.0, 10.0, 10.0, 10.0])
    long_axis = rng.uniform(80, 100)
    slices = int(np.clip(round((long_axis + rng.uniform(0, 15)) / spacing) + 1, 6, 12))
    return CardiacPatient(
        rows=rows,
        cols=cols,
        pixel=float(pixel),
        slices=slices,
        slice_spacing=float(spacing),
        first_slice=float(-rng.uniform(0.1, 0.6) * spacing),
        long_axis=float(long_axis),
        heart_offset=(float(rng.uniform(-0.07, 0.07) * fov), float(rng.uniform(-0.07, 0.07) * fov)),
        rotation=float(rng.uniform(-0.45, 0.45)),
        body=(float(fov * rng.uniform(0.46, 0.56)), float(fov * rng.uniform(0.36, 0.42))),
        lv_radius=float(rng.uniform(24, 31)),
        wall=float(rng.uniform(7.5, 11)),
        ellipticity=float(rng.uniform(0.88, 1.12)),
        rv_angle=float(np.deg2rad(rng.uniform(195, 225))),
        rv_size=float(rng.uniform(1.05, 1.4)),
        es_factor=float(rng.uniform(0.55, 0.75)),
        gain=float(rng.uniform(150, 600)),
        noise=float(rng.uniform(0.025, 0.06)),
        seed=int(rng.integers(2**31)),
    )


def cardiac_volume(p: CardiacPatient, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """One cardiac phase (``"ED"`` or ``"ES"``) as (Z, H, W) int16 magnitude image and uint8 label
    (0 background, 1 RV, 2 Myo, 3 LV)."""
    rng = np.random.default_rng(p.seed + (0 if phase == "ED" else 1))
    es = phase == "ES"
    z = p.first_slice + p.slice_spacing * np.arange(p.slices)  # depth below the mitral plane
    long_axis = p.long_axis * (0.9 if es else 1.0)
    zz = z[:, None, None]
    yy = ((np.arange(p.rows) - (p.rows - 1) / 2) * p.pixel)[None, :, None] - p.heart_offset[1]
    xx = ((np.arange(p.cols) - (p.cols - 1) / 2) * p.pixel)[None, None, :] - p.heart_offset[0]
    c, s = np.cos(p.rotation), np.sin(p.rotation)
    u, v = c * xx + s * yy, -s * xx + c * yy  # anatomy frame centred on the LV
    # LV: an ellipsoidal shell truncated at the mitral plane (z = 0)
    depth = np.clip(zz / long_axis, -1.0, 1.0)
    taper = np.sqrt(np.clip(1.0 - depth**2, 0.0, 1.0))
    phi = np.arctan2(v, u)
    rho = np.sqrt((u * p.ellipticity) ** 2 + (v / p.ellipticity) ** 2) * (
        1 + 0.04 * np.sin(3 * phi + p.seed % 7) + 0.025 * np.sin(5 * phi + p.seed % 5)
    )
    r_cav = p.lv_radius * (p.es_factor if es else 1.0) * np.sqrt(np.clip(1.0 - (zz / (0.9 * long_axis)) ** 2, 0, 1))
    wall = p.wall * (1.45 if es else 1.0) * (1 + 0.18 * np.cos(phi - 0.6)) * (0.75 + 0.25 * taper)
    r_epi = (p.lv_radius * (p.es_factor if es else 1.0) + p.wall * (1.45 if es else 1.0)) * taper
    r_epi = np.maximum(r_epi, np.minimum(r_cav + wall, r_epi + 0 * wall))
    ventricle = zz >= 0
    basal = (zz < 0.12 * long_axis) & (np.cos(phi - np.deg2rad(250)) > 0.72)  # LV outflow gap at the base
    lv = ventricle & (rho < r_cav)
    myo = ventricle & (rho >= r_cav) & (rho < r_cav + wall) & (rho < np.maximum(r_epi, r_cav + 2.5)) & ~basal
    # papillary muscles: dark blobs inside the cavity, labelled LV as in ACDC
    pap = np.zeros_like(lv)
    for ang in (np.deg2rad(40), np.deg2rad(130)):
        pr = 0.62 * r_cav
        d = np.hypot(u - pr * np.cos(ang), v - pr * np.sin(ang))
        pap = pap | (lv & (d < 0.22 * r_cav + 0.5) & (zz > 0.25 * long_axis) & (zz < 0.75 * long_axis))
    # RV: an ellipse beside the septum minus the LV epicardium -> a crescent
    r_out = p.lv_radius + p.wall
    rv_scale = p.rv_size * (0.7 if es else 1.0) * np.sqrt(np.clip(1.0 - (zz / (0.72 * long_axis)) ** 2, 0, 1))
    cu, cv = 0.55 * r_out * np.cos(p.rv_angle), 0.55 * r_out * np.sin(p.rv_angle)
    ca, sa = np.cos(p.rv_angle), np.sin(p.rv_angle)
    pr_, qr_ = (u - cu) * ca + (v - cv) * sa, -(u - cu) * sa + (v - cv) * ca
    rv_ell = np.sqrt((pr_ / (0.95 * r_out * rv_scale + 1e-3)) ** 2 + (qr_ / (1.35 * r_out * rv_scale + 1e-3)) ** 2)
    lv_epi = rho < np.maximum(r_cav + wall, r_epi) + 1.0
    rv = ventricle & (rv_ell < 1.0 - 3.0 / (r_out * rv_scale + 1e-3)) & ~lv_epi & (rv_scale > 0.15)
    rv_wall = ventricle & (rv_ell < 1.0) & ~rv & ~lv_epi & (rv_scale > 0.15)
    # atria above the mitral plane: bright unlabelled blood
    atria = (zz < 0) & ((np.hypot(u, v) < 0.9 * r_out) | (np.hypot(u - 1.3 * cu, v - 1.3 * cv) < 0.8 * r_out))

    # surroundings (drawn relative to the heart; the body nearly fills the field of view)
    bx, by = xx + 25.0, yy - 35.0  # body centre: posterior and to the patient's right of the heart
    wobble = 1 + 0.03 * _smooth_field(rng, (np.arctan2(by, bx) * 60, zz), 3, (40, 120))
    body = np.sqrt((bx / p.body[0]) ** 2 + (by / p.body[1]) ** 2) * wobble
    lung_r = (np.hypot((xx - 88) / 55, (yy - 20) / 82), np.hypot((xx + 80) / 52, (yy - 10) / 80))
    lungs = ((lung_r[0] < 1) | (lung_r[1] < 1)) & (np.hypot(u, v) > r_out + 6)
    liver = np.hypot((xx + 60) / 85, (yy - 50) / 65) < np.clip((zz - 0.3 * long_axis) / (0.45 * long_axis), 0, 1.3)
    aorta = np.hypot(xx - 22, yy - 72) < 11
    spine = np.hypot(bx, by - 0.62 * p.body[1])
    ribs = (np.abs(body - 0.84) < 0.03) & (np.cos(10 * np.arctan2(by, bx) + 0.03 * zz) > 0.75)
    fat = (np.hypot(u, v) < r_out + 8) & ~lv_epi & ~rv & ~rv_wall & (_smooth_field(rng, (u, v, zz), 6, (25, 60)) > 0.4)

    tissue = 0.3 + 0.05 * _smooth_field(rng, (xx, yy, zz), 6, (15, 60))
    img = np.where(body < 1.0, tissue, 0.0)
    img = np.where((body > 0.93) & (body < 1.0), 0.8 + 0.05 * _smooth_field(rng, (xx, yy), 3, (20, 50)), img)  # fat
    img = np.where(ribs, 0.15, img)
    vessels = _smooth_field(rng, (xx, yy, zz), 12, (5, 12)) * _smooth_field(rng, (xx, yy, zz), 12, (8, 20))
    img = np.where(lungs & (body < 0.86), 0.05 + 0.2 * (vessels > 1.2), img)
    img = np.where(liver & (body < 0.9) & ~lungs, 0.42 + 0.03 * _smooth_field(rng, (xx, yy, zz), 3, (10, 30)), img)
    img = np.where(spine < 21, 0.5, img)
    img = np.where(spine < 17, 0.62, img)
    img = np.where(aorta, 0.95, img)
    img = np.where(fat, 0.8, img)
    img = np.where(atria | rv | lv, 1.0, img)  # blood
    img = np.where(rv_wall, 0.32, img)
    img = np.where(myo, 0.3 + 0.03 * _smooth_field(rng, (u, v, zz), 3, (8, 25)), img)
    img = np.where(pap, 0.36, img)
    # partial volume: blur in-plane by ~0.7 px and mix a little of the neighbouring slices
    img = ndimage.gaussian_filter(img.astype(np.float32), sigma=(0, 0.7, 0.7))
    if p.slices > 1:
        img = 0.85 * img + 0.075 * (np.roll(img, 1, 0) + np.roll(img, -1, 0))
    # flow artefact: blood pool brightness varies smoothly
    img = img * (1 + 0.05 * _smooth_field(rng, (xx, yy, zz), 2, (30, 60)) * (lv | rv))
    # bias field from the surface coil (anterior brighter) and Rician noise
    bias = np.exp(0.25 * _smooth_field(rng, (xx, yy), 2, (250, 500)) - 0.0015 * (yy + p.heart_offset[1]))
    sig = img * bias * p.gain
    n = p.noise * p.gain
    mag = np.sqrt((sig + rng.normal(0, n, sig.shape)) ** 2 + rng.normal(0, n, sig.shape) ** 2)
    label = np.zeros(img.shape, np.uint8)
    label[rv] = 1
    label[myo] = 2
    label[lv] = 3
    return np.clip(mag, 0, 32767).astype(np.int16), label


# ----------------------------------------------------------------------------------------------------
# Synapse-like abdominal CT
# ----------------------------------------------------------------------------------------------------

# BTCV label values (see aisam_monai.data.synapse.BTCV_LABELS)
_SPLEEN, _RKID, _LKID, _GALL, _ESO, _LIVER, _STOM, _AORTA, _IVC, _PORTAL, _PANC, _RADR, _LADR = range(1, 14)


@dataclass
class AbdomenCase:
    """Per-case geometry of an abdominal CT (mm)."""

    size: int
    pixel: float
    slices: int
    slice_spacing: float
    body: tuple[float, float]
    shift: tuple[float, float, float]  # organ displacement (x, y, z)
    scale: float
    gallbladder: bool
    noise: float
    seed: int


def abdomen_case(rng: np.random.Generator, size: int = 512, slices: tuple[int, int] = (40, 150)) -> AbdomenCase:
    """Draw one case: ``size``-px axial slices, 0.6-0.9 mm pixels (scaled for small sizes), 2.5-5 mm slices."""
    pixel = rng.uniform(0.6, 0.9) * 512 / size
    spacing = float(rng.choice([2.5, 3.0, 3.0, 5.0]))
    extent = rng.uniform(200, 330)
    nz = int(np.clip(round(extent / spacing), *slices))
    half_width = pixel * size * rng.uniform(0.39, 0.46)  # the field of view is fitted to the patient
    return AbdomenCase(
        size=size,
        pixel=float(pixel),
        slices=nz,
        slice_spacing=spacing,
        body=(float(half_width), float(half_width * rng.uniform(0.68, 0.8))),
        shift=(float(rng.uniform(-10, 10)), float(rng.uniform(-8, 8)), float(rng.uniform(-30, 10))),
        scale=float(np.clip(half_width / 160 * rng.uniform(0.95, 1.05), 0.8, 1.25)),
        gallbladder=bool(rng.random() < 0.85),
        noise=float(rng.uniform(8, 18)),
        seed=int(rng.integers(2**31)),
    )


def _ellipsoid(x, y, z, c, r, angle: float = 0.0):
    """Normalised ellipsoid radius (< 1 inside); ``angle`` rotates it in the axial plane."""
    dx, dy = x - c[0], y - c[1]
    ca, sa = np.cos(angle), np.sin(angle)
    return np.sqrt(((ca * dx + sa * dy) / r[0]) ** 2 + ((-sa * dx + ca * dy) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)


def abdomen_volume(a: AbdomenCase, z_chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The CT as (Z, H, W) int16 HU and uint8 BTCV labels (0-13), built ``z_chunk`` slices at a time."""
    image = np.empty((a.slices, a.size, a.size), np.int16)
    label = np.empty((a.slices, a.size, a.size), np.uint8)
    for z0 in range(0, a.slices, z_chunk):
        zs = np.arange(z0, min(z0 + z_chunk, a.slices))
        rng = np.random.default_rng([a.seed, z0])
        img, lab = _abdomen_chunk(a, zs, rng)
        image[zs], label[zs] = img, lab
    return image, label


def _abdomen_chunk(a: AbdomenCase, zs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(a.seed)  # case-level randomness shared by all chunks (textures)
    half = (a.size - 1) / 2
    z = (zs * a.slice_spacing).astype(np.float32)[:, None, None]  # mm below the top slice
    y = ((np.arange(a.size) - half) * a.pixel).astype(np.float32)[None, :, None]
    x = ((np.arange(a.size) - half) * a.pixel).astype(np.float32)[None, None, :]
    bw, bh = a.body
    body_r = np.sqrt((x / bw) ** 2 + ((y - 5) / bh) ** 2 * (1 + 0.15 * (y > 0)))
    k = a.scale
    sx, sy, sz = a.shift
    ox, oy, oz = x - sx, y - sy, z - sz  # organ frame

    # a few shared texture fields (unit variance), reused with different gains by every tissue
    fine, mid, coarse = (_smooth_field(g, (x, y, z), 6, w) for w in ((3, 10), (8, 30), (30, 80)))
    blobs, bubbles = _smooth_field(g, (x, y, z), 10, (20, 50)), _smooth_field(g, (x, y, z), 6, (6, 14))

    hu = np.full(body_r.shape, -1000.0, dtype=np.float32)
    lab = np.zeros(body_r.shape, np.uint8)
    inside = body_r < 1.0
    hu = np.where(inside, -95 + 12 * coarse, hu)  # fat
    muscle_ring = (body_r > 0.86) & (body_r < 0.93)
    hu = np.where(muscle_ring, 50 + 8 * mid, hu)
    # bowel loops with gas, mostly inferior and anterior
    bowel = inside & (body_r < 0.8) & (blobs > 0.9) & (oz > 110 * k) & (y < 45)
    gas = bowel & (bubbles > 1.4)
    hu = np.where(bowel, 25 + 10 * mid, hu)
    hu = np.where(gas, -750.0, hu)
    # spine and paraspinal muscles
    vy = bh * 0.62
    hu = np.where(inside & (np.hypot((np.abs(x) - 32) / 22, (y - vy - 10) / 28) < 1), 52 + 6 * mid, hu)
    vert = np.hypot(x, y - vy)
    hu = np.where(vert < 20, 220 + 30 * mid, hu)
    hu = np.where((vert >= 20) & (vert < 23), 650.0, hu)
    hu = np.where(np.hypot(x / 6, (y - vy - 35) / 14) < 1, 550.0, hu)
    # ribs in the upper half: short cortical arcs near the body wall
    rib_ang = np.arctan2(y / bh, x / bw)
    ribs = (np.abs(body_r - 0.855) < 0.016) & (np.cos(11 * rib_ang + 0.015 * z) > 0.9) & (oz < 150 * k) & (y < 60)
    hu = np.where(ribs, 600.0, hu)

    def paint(mask, value, label_value):
        nonlocal hu, lab
        hu = np.where(mask, value, hu)
        lab = np.where(mask, np.uint8(label_value), lab)

    # liver (patient right = image left), with the gallbladder fossa
    liver = _ellipsoid(ox, oy, oz, (-62 * k, -5, 55 * k), (88 * k, 80 * k, 115 * k), 0.35)
    liver_m = (liver < 1 + 0.04 * coarse) & (ox < 35) & inside
    paint(liver_m, 95 + 8 * mid, _LIVER)
    # spleen (patient left, posterior)
    spleen = _ellipsoid(ox, oy, oz, (92 * k, 48 * k, 80 * k), (28 * k, 48 * k, 55 * k), -0.6) < 1
    paint(spleen & inside, 110 + 6 * mid, _SPLEEN)
    # stomach: wall, fluid and an anterior gas cap
    stom = _ellipsoid(ox, oy, oz, (52 * k, -35 * k, 70 * k), (48 * k, 38 * k, 62 * k), 0.5)
    paint((stom < 1) & inside, 40 + 6 * mid, _STOM)
    hu = np.where((stom < 0.82) & inside, 12 + 5 * mid, hu)
    hu = np.where((stom < 0.82) & (oy < -50 * k), -800.0, hu)
    # kidneys: cortex, medulla, sinus fat at the hilum
    for side, lv in ((1, _LKID), (-1, _RKID)):
        kc = (side * 72 * k, 52 * k, (150 if side > 0 else 160) * k)
        kr = _ellipsoid(ox, oy, oz, kc, (27 * k, 33 * k, 52 * k), side * 0.45)
        kid = kr < 1
        hilum = np.hypot(ox - kc[0] + side * 20 * k, oy - kc[1] + 8) < 11 * k
        paint(kid & ~hilum, 175 + 10 * mid, lv)
        hu = np.where(kid & (kr < 0.65 + 0.08 * fine) & ~hilum, 120 + 8 * mid, hu)
        hu = np.where(kid & hilum, -40.0, hu)
        adr = _ellipsoid(ox, oy, oz, (side * 48 * k, 30 * k, kc[2] - 62 * k), (5, 14, 16), side * 0.8) < 1
        paint(adr, 40 + 5 * mid, _LADR if side > 0 else _RADR)
    # vessels: aorta, IVC, esophagus at the top, portal vein towards the liver hilum
    paint(np.hypot(ox - 14, oy - (vy - 32)) < 11.5 * k, 185 + 10 * mid, _AORTA)
    paint(np.hypot(ox + 24, oy - (vy - 30)) < 11 * k, 140 + 10 * mid, _IVC)
    paint((np.hypot(ox - 20, oy - (vy - 48)) < 8) & (oz < 45 * k), 45.0, _ESO)
    portal = np.hypot(ox + 15 + 0.25 * (oz - 110 * k), oy - 5) < 7 * k
    paint(portal & (np.abs(oz - 105 * k) < 25 * k), 170.0, _PORTAL)
    # pancreas: a lobulated tube from the duodenal curve towards the splenic hilum
    t = np.clip((ox + 30 * k) / (110 * k), 0, 1)
    centre_y = 15 * k + 15 * k * np.sin(np.pi * t) + (1 - t) * 5
    centre_z = 135 * k - 20 * k * t
    panc_r = (13 - 5 * t) * k * (1 + 0.15 * fine)
    panc = (np.hypot(oy - centre_y, (oz - centre_z) * 0.6) < panc_r) & (ox > -30 * k) & (ox < 80 * k)
    paint(panc, 85 + 12 * fine, _PANC)
    if a.gallbladder:
        gb = _ellipsoid(ox, oy, oz, (-40 * k, -45 * k, 135 * k), (14 * k, 17 * k, 32 * k), 0.6) < 1
        paint(gb, 8 + 3 * mid, _GALL)
    # acquisition: correlated noise and slight blur
    noise = ndimage.gaussian_filter(rng.normal(0, a.noise * 1.8, hu.shape).astype(np.float32), sigma=(0, 0.8, 0.8))
    hu = ndimage.gaussian_filter(hu.astype(np.float32), sigma=(0, 0.6, 0.6)) + noise
    return np.clip(hu, -1024, 3071).astype(np.int16), lab.astype(np.uint8)
