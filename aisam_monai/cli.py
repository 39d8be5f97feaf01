# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""The ``aisam`` command: automatic segmentation, refinement with edits, and figures of NIfTI volumes.

::

    aisam segment IN.nii.gz --bundle bundles/acdc [--checkpoint model.pt] --out OUT.nii.gz [--points-out points.json]
    aisam refine IN.nii.gz --bundle bundles/acdc [--checkpoint model.pt] --edits edits.json --out OUT.nii.gz
                 [--seg OUT.nii.gz] [--points-out refined_points.json]
    aisam show IN.nii.gz --seg OUT.nii.gz [--points points.json] [--slices 3 5 7] --out fig.png
    aisam serve --root FOLDER --bundle bundles/acdc [--checkpoint model.pt] [--port 8765] [--out-dir DIR]

The model comes from a bundle folder (``--bundle``) or a config file of AISAM arguments or a bundle config
(``--config``), with ``--checkpoint``. Segmentations are written as uint8 NIfTI with the input's shape and affine;
every output is written atomically. See ``docs/interactive.md`` and
:mod:`aisam_monai.interactive.edit_file` for the file formats.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
import yaml

from aisam_monai.interactive.edit_file import prompts_record, read_edits, slice_points_from_record
from aisam_monai.interactive.predictor import AISAMPredictor
from aisam_monai.interactive.slice_decoding import DECODE_PATHS
from aisam_monai.io.atomic import atomic_write_json
from aisam_monai.io.checks import NONFINITE_POLICIES, check_label_file, check_volume_file
from aisam_monai.io.errors import LOGGER_NAME, reported_cause
from aisam_monai.io.nifti import write_labels_like
from aisam_monai.visualize import plot_slices

__all__ = ["main", "build_parser"]


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}.")
    return key, yaml.safe_load(value)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="bundle folder, e.g. bundles/acdc")
    source.add_argument("--config", help="YAML/JSON file of AISAM arguments, or a bundle config with network_def")
    group.add_argument("--checkpoint", help="model weights (default with --bundle: its config's checkpoint entry)")
    group.add_argument(
        "--override",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="bundle config override, e.g. image_size=256 (repeatable)",
    )
    group.add_argument(
        "--decode-path",
        "--mode",
        dest="decode_path",
        choices=DECODE_PATHS,
        default=None,
        help="how edited points reach the decoder (default: generalized, or the edits file's mode)",
    )
    group.add_argument(
        "--nonfinite",
        choices=NONFINITE_POLICIES,
        default="error",
        help="NaN or infinite input intensities: error (default, one line) or fill (NaN and -Inf set to the volume's "
        "lowest finite intensity, +Inf to its highest, with a warning giving their number)",
    )
    group.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    group.add_argument("--batch-size", type=int, default=8, help="slices per model call")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``aisam`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="aisam",
        description="Automatic and interactive AI-SAM segmentation of NIfTI volumes.",
        epilog=INPUT_RULES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="automatic segmentation of a volume")
    seg.add_argument("image", help="input volume (NIfTI)")
    _model_arguments(seg)
    seg.add_argument("--out", required=True, help="output segmentation (.nii.gz)")
    seg.add_argument("--points-out", help="write the generated points and class presence as JSON")

    ref = sub.add_parser("refine", help="segmentation with edits (points, boxes, present classes)")
    ref.add_argument("image", help="input volume (NIfTI)")
    _model_arguments(ref)
    ref.add_argument("--edits", required=True, help="edits JSON file")
    ref.add_argument("--out", required=True, help="output segmentation (.nii.gz)")
    ref.add_argument("--seg", help="earlier automatic segmentation: only the slices the edits touch are recomputed")
    ref.add_argument(
        "--points-out",
        help="write the points (with the edited slices' prompts) as JSON; "
        "it holds every slice's generated points, so all slices are encoded",
    )

    show = sub.add_parser("show", help="figure of slices with segmentation and points")
    show.add_argument("image", help="input volume (NIfTI)")
    show.add_argument("--seg", help="segmentation to overlay (.nii.gz)")
    show.add_argument("--label", help="ground truth to show above the segmentation (.nii.gz)")
    show.add_argument("--points", help="points JSON written by segment/refine or by a bundle")
    show.add_argument(
        "--slices", type=int, nargs="+", help="slice indices (default: up to 4 with foreground in --label, else --seg)"
    )
    show.add_argument("--class-names", nargs="+", help="class names, background first (default: from --points)")
    show.add_argument("--out", required=True, help="output figure (.png, .pdf, .svg)")

    serve = sub.add_parser(
        "serve",
        help="browser editor: open volumes, correct the segmentation by clicking, save (needs the serve extra)",
        description="Start the browser editor on a folder of NIfTI volumes and print its URL. Every edit updates "
        "the slice from the cached image embedding; Save writes IMAGE_seg.nii.gz (uint8, the input's shape and "
        "affine) and IMAGE_edits.json, an edits file that `aisam refine` reproduces exactly. See docs/editor.md.",
    )
    serve.add_argument("--root", required=True, help="folder of NIfTI volumes; only files under it can be opened")
    _model_arguments(serve)
    serve.add_argument("--out-dir", help="where Save writes (default: beside each input volume)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument(
        "--token", help="secret that every request must carry; required when --host is not a loopback address"
    )
    serve.add_argument("--max-size-mb", type=float, default=2048, help="largest volume file opened (default 2048)")
    return parser


def _predictor(args: argparse.Namespace):
    kwargs = {"device": args.device, "batch_size": args.batch_size, "progress": not args.no_progress}
    kwargs["nonfinite"] = args.nonfinite
    if args.decode_path is not None:
        kwargs["decode_path"] = args.decode_path
    if args.bundle:
        return AISAMPredictor.from_bundle(args.bundle, args.checkpoint, overrides=dict(args.override), **kwargs)
    if not args.checkpoint:
        raise ValueError("--config needs --checkpoint.")
    return AISAMPredictor.from_checkpoint(args.checkpoint, args.config, **kwargs)


def _segment(args: argparse.Namespace) -> None:
    predictor = _predictor(args)
    predictor.set_volume(args.image)
    write_labels_like(args.out, predictor.predict_volume(), args.image)
    print(f"wrote {args.out}")
    if args.points_out:
        atomic_write_json(args.points_out, prompts_record(predictor, args.image))
        print(f"wrote {args.points_out}")


def _refine(args: argparse.Namespace) -> None:
    predictor = _predictor(args)
    predictor.set_volume(args.image)
    previous = None
    if args.seg:
        previous = _read_volume(args.seg, "--seg", predictor.num_classes, predictor.shape)
    decode_path, edits = read_edits(args.edits, predictor)
    if decode_path is not None and args.decode_path is None:
        predictor.decode_path = decode_path
    changed = predictor.apply_edits(edits)
    if previous is None:
        labels = predictor.predict_volume()
    else:
        labels = torch.as_tensor(np.asarray(previous).reshape(predictor.shape).astype(np.uint8))
        for z, pred in predictor.predict_slices(changed).items():
            labels[..., z] = pred.labels
    write_labels_like(args.out, labels, args.image)
    print(f"wrote {args.out} ({len(changed)} slices changed by the edits)")
    if args.points_out:
        atomic_write_json(args.points_out, prompts_record(predictor, args.image))
        print(f"wrote {args.points_out}")


def _read_volume(path: str, what: str, num_classes: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """A checked volume: an image (``num_classes`` None) or a label volume with values below ``num_classes``."""
    if num_classes is None:
        check_volume_file(path, what=what)
    else:
        check_label_file(path, num_classes, shape)
    return np.asanyarray(nib.load(path).dataobj)


def _show(args: argparse.Namespace) -> None:
    image = _read_volume(args.image, "image")
    image = image.reshape(image.shape[:3])
    volumes = {}
    for name in ("seg", "label"):
        path = getattr(args, name)
        if path:
            vol = _read_volume(path, f"--{name}", 256, image.shape)
            volumes[name] = vol.reshape(image.shape).astype(np.int64)
    record = None
    if args.points:
        if not os.path.isfile(args.points):
            raise FileNotFoundError(f"{args.points}: points file not found.")
        try:
            with open(args.points) as f:
                record = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{args.points}: not valid JSON ({e}).") from e
        if not (isinstance(record, dict) and all(isinstance(record.get(k), list) for k in ("classes", "slices"))):
            raise ValueError(f"{args.points}: not a points file of aisam or of a bundle (no classes and slices lists).")
    depth = image.shape[2]
    slices = args.slices
    if slices is None:
        ref = volumes.get("label", volumes.get("seg"))  # the ground truth where given: a missed slice shows
        candidates = np.flatnonzero(ref.reshape(-1, depth).any(0)) if ref is not None else np.arange(depth)
        candidates = candidates if len(candidates) else np.arange(depth)
        picks = np.linspace(0, len(candidates) - 1, min(4, len(candidates))).round().astype(int)
        slices = sorted({int(candidates[i]) for i in picks})
    for z in slices:
        if not 0 <= z < depth:
            raise ValueError(f"slice {z} does not exist; {args.image} has slices 0..{depth - 1}.")
    names = args.class_names or (record["classes"] if record else None)
    if names is None:
        top = max([1] + [int(v.max()) for v in volumes.values()])
        names = ["background"] + [f"class {c}" for c in range(1, top + 1)]
    points = point_labels = None
    if record is not None:
        pairs = [slice_points_from_record(record, z) for z in slices]
        points, point_labels = [p for p, _ in pairs], [lab for _, lab in pairs]
    plot_slices(
        [image[..., z] for z in slices],
        labels=[volumes["label"][..., z] for z in slices] if "label" in volumes else None,
        preds=[volumes["seg"][..., z] for z in slices] if "seg" in volumes else None,
        points=points,
        point_labels=point_labels,
        class_names=names,
        titles=[f"slice {z}" for z in slices],
        out_path=args.out,
    )
    print(f"wrote {args.out}")


def _serve(args: argparse.Namespace) -> None:
    if args.host not in LOOPBACK and not args.token:
        raise ValueError(f"--host {args.host} is reachable from other machines: give --token.")
    if not os.path.isdir(args.root):
        raise FileNotFoundError(f"{args.root}: --root is not a folder.")
    try:
        import uvicorn

        from aisam_monai.serve import create_app
    except ImportError as e:
        raise ValueError(f'the editor needs the serve extra: pip install -e ".[serve]" ({e}).') from None
    base = _predictor(args)
    app = create_app(
        base.fresh,
        args.root,
        out_dir=args.out_dir,
        token=args.token,
        max_bytes=int(args.max_size_mb * (1 << 20)),
        batch_size=args.batch_size,
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"aisam editor: http://{host}:{args.port}/" + (f"?token={args.token}" if args.token else ""), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


INPUT_RULES = """input checks (before any model call; nothing is written when an input is bad):
  every input volume is read once in full: a missing, truncated or corrupt file, a 2D or 4D image (a 4th axis
  of one volume is fine), an empty axis or a non-finite affine stops with one line naming the file (status 2).
  NaN or infinite intensities stop the command unless --nonfinite fill, which sets NaN and -Inf to the volume's
  lowest finite intensity and +Inf to its highest, with a warning giving their number. A constant image (an
  empty segmentation follows) and intensities beyond +-1e5 give a warning. Label volumes (--seg, --label) must
  hold integers of the class set on the image's grid; image_size must suit the backbone; the checkpoint must
  fit the model. Outputs are written atomically: an interrupted or failed run (a full disk) leaves the old
  file or none, never a partial one."""


class _OneLine(logging.Handler):
    """Prints the input checks' lines as ``aisam COMMAND: error|warning: message`` on stderr."""

    def __init__(self, command: str) -> None:
        super().__init__(logging.WARNING)
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        print(f"aisam {self.command}: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aisam`` console script; returns the exit status (2 with a one-line error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"segment": _segment, "refine": _refine, "show": _show, "serve": _serve}[args.command]
    logger, handler = logging.getLogger(LOGGER_NAME), _OneLine(args.command)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        command(args)
    except (FileNotFoundError, ValueError, OSError) as e:
        if reported_cause(e) is None:  # an error of the input checks is already printed, once
            if isinstance(e, OSError) and not isinstance(e, FileNotFoundError) and e.strerror:
                e = f"{e.filename or ''}: {e.strerror}; nothing was written." if e.filename else e.strerror
            print(f"aisam {args.command}: error: {_first_line(str(e))}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    return 0


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


if __name__ == "__main__":
    sys.exit(main())
