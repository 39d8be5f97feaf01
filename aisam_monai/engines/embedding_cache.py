# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
Training from cached image embeddings, for a frozen image encoder.

With the encoder frozen (no LoRA, no encoder training), an AI-SAM (Pan et al., arXiv 2312.03119) training step
depends on the image only through the encoder's embedding ``X``: the AI-Prompter, the classifier and SAM's mask
decoder train from ``X``. :class:`EmbeddingCache` computes ``X`` once per training slice with the network's encoder,
for the original slice and ``num_augmentations`` augmented copies (the augmentation of
:func:`~aisam_monai.transforms.train_transforms`, the label augmented alike), and stores, per volume, one file
(written atomically, read back memory-mapped, so the cache need not fit in memory) holding, for its ``N`` entries:

* ``embedding`` float16 ``(N, D, h, w)`` (the network's :attr:`~aisam_monai.networks.AISAM.grid`);
* ``label`` uint8 ``(N, S, S)``, ``presence`` uint8 ``(N, C)``;
* ``foreground`` bool ``(N,)``, ``slice_index`` and ``copy`` (0: the original, ``k``: the ``k``-th augmented copy).

Entries are ordered copy by copy, each copy slice by slice. ``cache_dir/manifest.json`` records every setting that
determines the cache (:meth:`EmbeddingCache.settings`); a run with the same settings reuses it, a run whose
settings differ rebuilds it and logs which settings changed, and a killed build resumes from the volume files
already written. :class:`EmbeddingCacheDataset` draws ``slices_per_volume`` entries per volume and epoch with
:class:`~aisam_monai.transforms.RandSliceSampled`'s rule; :class:`~aisam_monai.engines.AISAMTrainer` decodes batches
with an ``embedding`` key with :meth:`~aisam_monai.networks.AISAM.decode`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence

import torch
from monai.data import Dataset
from monai.transforms import Compose, Transform
from monai.utils import convert_to_tensor, optional_import

from aisam_monai.io.atomic import atomic_write_bytes, atomic_write_json
from aisam_monai.io.errors import InputError, reported
from aisam_monai.networks import AISAM
from aisam_monai.transforms import RandSliceSampled, eval_transforms, slice_transforms

tqdm, _ = optional_import("tqdm", name="tqdm")

__all__ = [
    "CACHE_FORMAT",
    "EMBEDDING_KEY",
    "EmbeddingCache",
    "EmbeddingCacheDataset",
    "CachedEntryd",
    "check_cache_settings",
]

CACHE_FORMAT = 1
"""Version of the cache's file layout, recorded in the manifest (a new layout rebuilds old caches)."""
EMBEDDING_KEY = "embedding"
"""Batch key of cached image embeddings ``(B, D, h, w)``, which :class:`~aisam_monai.engines.AISAMTrainer` decodes."""
MANIFEST = "manifest.json"
_LOGGER = logging.getLogger("aisam_monai.embedding_cache")


def check_cache_settings(
    cache_embeddings: bool, cache_augmentations: int, use_lora: bool, train_encoder: bool, augment: bool
) -> None:
    """
    One line (:class:`~aisam_monai.io.InputError`, logged) before any work unless the bundle settings allow training
    from cached embeddings: ``cache_embeddings`` True or False; when True, a frozen encoder (``use_lora`` and
    ``train_encoder`` False) and ``cache_augmentations`` an integer >= 0, > 0 only with ``augment``.
    """
    if not isinstance(cache_embeddings, bool):
        raise reported(
            InputError(
                "cache_embeddings",
                f"must be True or False (capitalised on the command line), got {cache_embeddings!r}.",
            )
        )
    if not cache_embeddings:
        return
    if use_lora is not False or train_encoder is not False:
        reason = (
            "needs a frozen image encoder: pass --use_lora False --train_encoder False (the embeddings are computed "
            f"once), got use_lora={use_lora!r}, train_encoder={train_encoder!r}."
        )
        raise reported(InputError("cache_embeddings", reason))
    if isinstance(cache_augmentations, bool) or not isinstance(cache_augmentations, int) or cache_augmentations < 0:
        raise reported(InputError("cache_augmentations", f"must be an integer >= 0, got {cache_augmentations!r}."))
    if cache_augmentations and augment is not True:
        reason = f"augmented copies need --augment True, got augment={augment!r} with {cache_augmentations} copies."
        raise reported(InputError("cache_augmentations", reason))


def _file_signature(path: str) -> dict:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _tensors_sha1(module: torch.nn.Module) -> str:
    """SHA-1 of a module's state (names and bytes): the weights that produce the embeddings."""
    digest = hashlib.sha1()
    for name, value in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class EmbeddingCache:
    """
    Image embeddings of every training slice (and of ``num_augmentations`` augmented copies), computed once with a
    frozen encoder and kept under ``cache_dir`` (see the module's docstring for the layout).

    Args:
        network: the :class:`~aisam_monai.networks.AISAM` being trained, its image encoder frozen; ``image_size``,
            ``num_classes`` and ``pixel_normalization`` come from it.
        data: the training datalist (items with ``image`` and ``label`` file paths; other keys pass through to the
            dataset's entries).
        cache_dir: folder of the cache (created when missing).
        sam_type: the backbone's name, recorded in the manifest.
        intensity: the datalist's ``intensity`` entry.
        sam_checkpoint: the encoder's checkpoint file (recorded by path, size and modification time), or None.
        slice_axis: spatial axis of the slices.
        num_augmentations: augmented copies ``K`` cached per slice.
        aug_prob: probability of each augmentation step (as :func:`~aisam_monai.transforms.train_transforms`).
        flips: include the rot90-and-flip step.
        seed: seed of the augmented copies (copy ``k`` of volume ``v`` does not depend on the other volumes, so a
            resumed build gives the same cache).
        batch_size: slices per encoder call.
        progress: show a progress bar over the volumes (else one log line per volume).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        data: Sequence[Mapping],
        cache_dir: str,
        sam_type: str,
        intensity: Mapping,
        sam_checkpoint: str | None = None,
        slice_axis: int = 2,
        num_augmentations: int = 0,
        aug_prob: float = 0.5,
        flips: bool = True,
        seed: int = 0,
        batch_size: int = 8,
        progress: bool = True,
    ) -> None:
        if not isinstance(network, AISAM):
            raise reported(
                InputError(
                    "cache_embeddings",
                    f"trains one AISAM on one process (not multi-GPU), got a {type(network).__name__} network.",
                )
            )
        trainable = [n for n, p in network.sam.image_encoder.named_parameters() if p.requires_grad]
        if trainable:
            reason = f"needs a frozen image encoder, but {len(trainable)} of its tensors train (e.g. {trainable[0]})."
            raise reported(InputError("cache_embeddings", reason))
        self.network = network
        self.data = [dict(item) for item in data]
        self.cache_dir = cache_dir
        self.sam_type = sam_type
        self.sam_checkpoint = sam_checkpoint
        self.intensity = dict(intensity)
        self.slice_axis = slice_axis
        self.num_augmentations = num_augmentations
        self.aug_prob = aug_prob
        self.flips = flips
        self.seed = seed
        self.batch_size = batch_size
        self.progress = progress

    def settings(self) -> dict:
        """What determines the cache, as recorded in ``manifest.json``: the format, the backbone (``sam_type``, the
        checkpoint file, the SHA-1 of the encoder's weights, the input convention), the image size and classes, the
        augmented copies and their augmentation, the intensity scaling, the slice axis, the datalist's files and the
        seed."""
        net = self.network
        sign = _file_signature
        return {
            "format": CACHE_FORMAT,
            "sam_type": self.sam_type,
            "sam_checkpoint": sign(self.sam_checkpoint) if self.sam_checkpoint else None,
            "encoder_sha1": _tensors_sha1(net.sam.image_encoder),
            "pixel_normalization": net.pixel_normalization,
            "image_size": net.image_size,
            "num_classes": net.num_classes,
            "num_augmentations": self.num_augmentations,
            "augmentation": {"aug_prob": self.aug_prob, "aug_flips": self.flips} if self.num_augmentations else None,
            "intensity": self.intensity,
            "slice_axis": self.slice_axis,
            "datalist": [{"image": sign(d["image"]), "label": sign(d["label"])} for d in self.data],
            "seed": self.seed,
        }

    def volume_file(self, index: int) -> str:
        """The cache file of the ``index``-th datalist item."""
        return os.path.join(self.cache_dir, f"volume_{index:05d}.pt")

    def build(self) -> list[str]:
        """Reuse, complete or rebuild the cache (see the module's docstring); returns the volume files in datalist
        order."""
        settings = self.settings()
        manifest = os.path.join(self.cache_dir, MANIFEST)
        old = None
        if os.path.isfile(manifest):  # written atomically: whole or absent
            with open(manifest) as f:
                old = json.load(f)
        files = [self.volume_file(i) for i in range(len(self.data))]
        if old != settings:
            if old is not None:
                changed = [k for k in settings if old.get(k) != settings[k]] or ["format"]
                parts = [
                    k
                    if k in ("datalist", "encoder_sha1")
                    else f"{k} ({_describe(old.get(k))} -> {_describe(settings[k])})"
                    for k in changed
                ]
                _LOGGER.info(f"rebuilding embedding cache {self.cache_dir}: settings changed: {', '.join(parts)}")
            for name in os.listdir(self.cache_dir) if os.path.isdir(self.cache_dir) else []:
                if name.startswith("volume_") and name.endswith(".pt"):
                    os.remove(os.path.join(self.cache_dir, name))
            atomic_write_json(manifest, settings)
        todo = [i for i, f in enumerate(files) if not os.path.isfile(f)]
        if not todo:
            entries = sum(len(torch.load(f, mmap=True, weights_only=True)["copy"]) for f in files)
            _LOGGER.info(f"reusing embedding cache {self.cache_dir} ({entries} slices, {_size_mb(files):.1f} MiB)")
            return files
        done = len(files) - len(todo)
        _LOGGER.info(
            f"building embedding cache {self.cache_dir}: {len(todo)} of {len(files)} volumes"
            + (f" ({done} already written)" if done else "")
            + f", the original slices and {self.num_augmentations} augmented copies of each"
        )
        start, entries = time.perf_counter(), 0
        bar = tqdm(todo, desc="embedding cache", unit="volume") if self.progress and tqdm else None
        was_training = self.network.training
        self.network.eval()
        try:
            for count, index in enumerate(bar if bar is not None else todo, 1):
                record = self._volume_record(index)
                atomic_write_bytes(files[index], lambda tmp, record=record: torch.save(record, tmp))
                entries += len(record["copy"])
                if bar is None:
                    _LOGGER.info(f"embedding cache: volume {count}/{len(todo)}, {len(record['copy'])} slices")
        finally:
            self.network.train(was_training)
        _LOGGER.info(
            f"embedding cache {self.cache_dir}: {entries} slices encoded in {time.perf_counter() - start:.1f} s, "
            f"{_size_mb(files):.1f} MiB"
        )
        return files

    def dataset(self, slices_per_volume: int = 4, foreground_prob: float = 0.75) -> EmbeddingCacheDataset:
        """:meth:`build`, then the training dataset drawing ``slices_per_volume`` entries per volume and epoch."""
        extras = [{k: v for k, v in d.items() if k not in ("image", "label")} for d in self.data]
        return EmbeddingCacheDataset(self.build(), slices_per_volume, foreground_prob, extras)

    def _slices(self, index: int) -> Iterator[tuple[int, int, bool, dict]]:
        """
        ``(copy, slice index, foreground, slice_transforms output)`` of every entry of volume ``index``, in cache
        order. ``foreground``: the original slice has a non-zero label voxel (the rule of
        :class:`~aisam_monai.transforms.RandSliceSampled`, on the volume's grid); an augmented copy has one at ``S``.
        """
        volume = eval_transforms(self.intensity)({k: self.data[index][k] for k in ("image", "label")})
        image, label = (convert_to_tensor(volume[k], track_meta=False) for k in ("image", "label"))
        axis = 1 + self.slice_axis
        other = tuple(i for i in range(label.ndim) if i != axis)
        foreground = (label != 0).any(dim=other).tolist()
        net = self.network
        chain = {"image_size": net.image_size, "num_classes": net.num_classes}
        chain["sam_normalize"] = net.pixel_normalization == "sam"
        original = slice_transforms(augment=False, **chain)
        augmented = slice_transforms(augment=True, aug_prob=self.aug_prob, flips=self.flips, **chain)
        augmented.set_random_state(seed=self.seed + index)
        for copy in range(1 + self.num_augmentations):
            for s in range(image.shape[axis]):
                item = {"image": image.select(axis, s), "label": label.select(axis, s)}
                out = (augmented if copy else original)(item)
                yield copy, s, bool(out["label"].any()) if copy else foreground[s], out

    def _volume_record(self, index: int) -> dict[str, torch.Tensor]:
        device = next(self.network.parameters()).device
        parts: dict[str, list] = {k: [] for k in ("label", "presence", "foreground", "slice_index", "copy")}
        embeddings: list[torch.Tensor] = []
        batch: list[torch.Tensor] = []

        def encode() -> None:
            with torch.no_grad():
                embeddings.append(self.network.encode(torch.stack(batch).to(device)).to("cpu", torch.float16))
            batch.clear()

        for copy, s, foreground, item in self._slices(index):
            batch.append(item["image"])
            parts["label"].append(item["label"][0].to(torch.uint8))
            parts["presence"].append(item["multi_hot"].to(torch.uint8))
            parts["foreground"].append(foreground)
            parts["slice_index"].append(s)
            parts["copy"].append(copy)
            if len(batch) == self.batch_size:
                encode()
        if batch:
            encode()
        record = {k: torch.stack(parts[k]) for k in ("label", "presence")}
        record["foreground"] = torch.tensor(parts["foreground"], dtype=torch.bool)
        record["slice_index"] = torch.tensor(parts["slice_index"], dtype=torch.int32)
        record["copy"] = torch.tensor(parts["copy"], dtype=torch.int16)
        record["embedding"] = torch.cat(embeddings)
        return record


def _size_mb(files: Sequence[str]) -> float:
    return sum(os.path.getsize(f) for f in files if os.path.isfile(f)) / 2**20


class CachedEntryd(Transform):
    """
    Read one cache entry: ``cache_file`` and the entry index ``slice_index`` (as :class:`RandSliceSampled` gives it)
    to ``embedding`` float32 ``(D, h, w)``, ``label`` float32 ``(1, S, S)``, ``multi_hot`` float32 ``(C,)``, the
    volume's ``slice_index`` and ``copy``; other keys pass through, ``foreground`` is dropped. Files are opened
    memory-mapped once per process.
    """

    def __init__(self) -> None:
        self._records: dict[str, dict[str, torch.Tensor]] = {}

    def __getstate__(self) -> dict:  # DataLoader workers open the files themselves
        return {**self.__dict__, "_records": {}}

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = {k: v for k, v in data.items() if k not in ("cache_file", "foreground")}
        path, entry = data["cache_file"], int(data["slice_index"])
        if path not in self._records:
            self._records[path] = torch.load(path, mmap=True, weights_only=True)
        record = self._records[path]
        d[EMBEDDING_KEY] = record["embedding"][entry].float()
        d["label"] = record["label"][entry][None].float()
        d["multi_hot"] = record["presence"][entry].float()
        d["slice_index"] = int(record["slice_index"][entry])
        d["copy"] = int(record["copy"][entry])
        return d


class EmbeddingCacheDataset(Dataset):
    """
    Training entries from the volume files of an :class:`EmbeddingCache`: per volume, a list of
    ``slices_per_volume`` entries (as :func:`~aisam_monai.transforms.train_transforms` gives slices), drawn by
    :class:`~aisam_monai.transforms.RandSliceSampled` over the volume's entries (``foreground_prob``: chance of
    drawing among the entries with foreground), each read by :class:`CachedEntryd`. With no augmented copies and the
    same random state, the same slices are drawn as from the volumes.

    Args:
        files: the volume files.
        slices_per_volume: entries drawn per volume.
        foreground_prob: probability of drawing among the entries with foreground.
        extras: per volume, keys passed through to its entries (e.g. the datalist's ``case``).
    """

    def __init__(
        self,
        files: Sequence[str],
        slices_per_volume: int = 4,
        foreground_prob: float = 0.75,
        extras: Sequence[Mapping] | None = None,
    ) -> None:
        data = []
        for i, path in enumerate(files):
            foreground = torch.load(path, mmap=True, weights_only=True)["foreground"].clone()
            data.append(
                {**(extras[i] if extras else {}), "cache_file": path, "foreground": foreground.view(1, 1, 1, -1)}
            )
        sampler = RandSliceSampled(
            "foreground", "foreground", spatial_axis=2, num_samples=slices_per_volume, foreground_prob=foreground_prob
        )
        super().__init__(data, Compose([sampler, CachedEntryd()]))
