# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Prepare ACDC or Synapse, in any accepted source form, into NIfTI volumes and a MONAI datalist.

Usage::

    python -m aisam_monai.data.prepare acdc --source DIR --out DIR [--form official|ssl4mis|mtunet]
    python -m aisam_monai.data.prepare synapse --source DIR --out DIR [--form btcv|transunet]

Writes ``OUT/images/<case>.nii.gz``, ``OUT/labels/<case>.nii.gz``, ``OUT/datalist.json`` and
``OUT/prepare_report.json``; exits with status 1 when a case failed unless ``--skip-bad``. The
source is only read. See docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from aisam_monai.data import acdc, synapse
from aisam_monai.data.cases import prepare_cases, ratio_split, write_datalist
from aisam_monai.io.checks import NONFINITE_POLICIES, check_nonfinite_policy

__all__ = ["prepare", "main"]


def _resolve_split(
    split: str, ratios: Sequence[float], seed: int, patients: list[str], form_split: dict | None, dataset: str
) -> dict:
    """``auto``: the form's own lists if it has them, else ACDC ratios / Synapse's 18-12 cases;
    ``ratio``: a seeded split by patient; otherwise a JSON file with training/validation/test ids."""
    if split == "auto":
        if form_split is not None:
            return form_split
        if dataset == "synapse":
            return synapse.default_split(patients)
        split = "ratio"
    if split == "ratio":
        return ratio_split(patients, ratios, seed) | {"method": f"by patient, ratios {list(ratios)}, seed {seed}"}
    if split == "lists":
        if form_split is None:
            raise ValueError("--split lists: this source form ships no split lists")
        return form_split
    path = Path(split)
    if not path.is_file():
        raise ValueError(f"--split {split}: expected auto, ratio, lists or a JSON file of patient ids")
    with open(path) as f:
        data = json.load(f)
    return {k: list(data.get(k, [])) for k in ("training", "validation", "test")} | {"method": f"file {path}"}


def prepare(
    dataset: str,
    source: str | Path,
    out: str | Path,
    form: str | None = None,
    spacing: Sequence[float] | None = None,
    split: str = "auto",
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    overwrite: bool = False,
    log=print,
    nonfinite: str = "error",
) -> dict:
    """Prepare ``dataset`` (``acdc`` or ``synapse``) from ``source`` into ``out``; return the report.

    Args:
        dataset: ``"acdc"`` or ``"synapse"``.
        source: the source tree (read only).
        out: output folder (must not be inside ``source``).
        form: source form; detected when ``None``.
        spacing: (x, y, z) mm for forms that store none; documented defaults otherwise.
        split: ``auto``, ``ratio``, ``lists`` or a JSON file with patient id lists.
        ratios: training/validation/test fractions for ``ratio`` (and ACDC ``auto`` without lists).
        seed: seed of the ratio split.
        overwrite: rewrite cases that are already prepared.
        nonfinite: NaN/inf intensities: ``error`` (the case fails) or ``fill`` (the image's finite extremes are
            written in their place, with a warning); see :data:`~aisam_monai.io.checks.NONFINITE_POLICIES`.
    """
    check_nonfinite_policy(nonfinite)
    source, out = Path(source).resolve(), Path(out).resolve()
    if not source.is_dir():
        raise ValueError(f"{source}: source folder not found")
    if out == source or source in out.parents:
        raise ValueError(f"{out}: the output folder must not be inside the source {source}")
    module = {"acdc": acdc, "synapse": synapse}[dataset]
    form, cases, form_split = module.find_cases(source, form, spacing)
    meta_fn = acdc.acdc_meta if dataset == "acdc" else synapse.synapse_meta
    meta = meta_fn(form, spacing) | {"source": meta_fn(form, spacing)["source"] | {"path": str(source)}}
    log(f"{dataset}: {form} form, {len(cases)} cases in {source}")
    result = prepare_cases(cases, out, meta["num_classes"], overwrite=overwrite, log=log, nonfinite=nonfinite)
    patients = sorted({c.patient for c in cases})
    chosen = _resolve_split(split, ratios, seed, patients, form_split, dataset)
    return write_datalist(out, result, chosen, meta, log=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aisam_monai.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=("acdc", "synapse"))
    parser.add_argument("--source", required=True, help="source folder (never modified)")
    parser.add_argument("--out", required=True, help="output folder for images/, labels/, datalist.json")
    parser.add_argument(
        "--form", default=None, help="acdc: official|ssl4mis|mtunet; synapse: btcv|transunet (default: detect)"
    )
    parser.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=None,
        metavar=("X", "Y", "Z"),
        help="voxel spacing in mm for forms that store none",
    )
    parser.add_argument(
        "--split", default="auto", help="auto | ratio | lists | FILE.json with training/validation/test patient ids"
    )
    parser.add_argument("--ratios", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the ratio split")
    parser.add_argument("--overwrite", action="store_true", help="rewrite cases that are already prepared")
    parser.add_argument(
        "--nonfinite",
        choices=NONFINITE_POLICIES,
        default="error",
        help="NaN/inf intensities: error (the case fails, default) or fill (set to the image's finite extremes, "
        "with a warning)",
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="exit 0 even when some cases failed (they stay in the report)"
    )
    args = parser.parse_args(argv)
    try:
        report = prepare(
            args.dataset, args.source, args.out, form=args.form, spacing=args.spacing, split=args.split,
            ratios=args.ratios, seed=args.seed, overwrite=args.overwrite, nonfinite=args.nonfinite,
        )  # fmt: skip
    except (ValueError, OSError) as e:
        if isinstance(e, OSError) and e.filename:  # a full disk: the file being written is named
            e = f"{e.filename}: {e.strerror}; the files already written are complete, re-run to finish."
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if report["ok"] or args.skip_bad else 1


if __name__ == "__main__":
    sys.exit(main())
