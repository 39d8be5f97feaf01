# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Draw docs/figures/phantoms.png: synthetic ACDC and Synapse slices with their label overlays.

Usage: ``python docs/figures/make_phantom_figure.py [--out docs/figures/phantoms.png]``
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aisam_monai.data.phantoms import abdomen_case, abdomen_volume, cardiac_patient, cardiac_volume  # noqa: E402
from aisam_monai.data.synapse import BTCV_TO_SYNAPSE, CT_WINDOW  # noqa: E402

ACDC_COLORS = ["none", "deepskyblue", "lime", "red"]  # RV, Myo, LV
# aorta, gallbladder, left kidney, right kidney, liver, pancreas, spleen, stomach
SYNAPSE_COLORS = ["none", "red", "lime", "blue", "cyan", "orange", "magenta", "yellow", "purple"]


def _overlay(ax, image, label, colors, vmin=None, vmax=None, title=""):
    """Grey image with one contour per class, so the intensities stay visible."""
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    for c in range(1, len(colors)):
        if (label == c).any():
            ax.contour(label == c, levels=[0.5], colors=[colors[c]], linewidths=0.8)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="docs/figures/phantoms.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    fig, axes = plt.subplots(4, 4, figsize=(12, 12.5))
    for row in range(2):
        p = cardiac_patient(rng)
        for col, phase in enumerate(("ED", "ES")):
            img, lab = cardiac_volume(p, phase)
            for j, k in enumerate((max(1, p.slices // 3), min(p.slices - 2, 2 * p.slices // 3))):
                hi = np.percentile(img, 99.5)
                _overlay(
                    axes[row, 2 * col + j],
                    img[k],
                    lab[k],
                    ACDC_COLORS,
                    0,
                    hi,
                    f"ACDC-like patient {row + 1} {phase} slice {k}/{p.slices}",
                )
    for row in range(2, 4):
        a = abdomen_case(rng, 512, (40, 60))
        hu, btcv = abdomen_volume(a)
        lab = BTCV_TO_SYNAPSE[btcv]
        for j, frac in enumerate((0.2, 0.38, 0.5, 0.62)):
            k = int(frac * a.slices)
            _overlay(
                axes[row, j],
                hu[k],
                lab[k],
                SYNAPSE_COLORS,
                *CT_WINDOW,
                f"Synapse-like case {row - 1} slice {k}/{a.slices}",
            )
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
