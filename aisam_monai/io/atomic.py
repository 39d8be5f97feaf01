# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Atomic file writing: every output file appears whole or not at all (a temporary file in the target folder, then
``os.replace``), with the permissions a plain ``open()`` would give it. A writer killed mid-write (SIGKILL) leaves
the old file (or none) and a hidden temporary ``.NAME.PID.*.tmp*``, removed by the next write of ``NAME``."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_json"]


def _default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file (``mkstemp`` gives ``0o600``)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` left by writers that were killed (their process id no longer runs)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            pass


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[str], None], suffix: str = "") -> None:
    """
    Call ``write(tmp_path)`` on a temporary file in the target directory, then ``os.replace`` it; the file gets the
    permissions a plain ``open()`` would give it (readable by the group and others under the usual umask).

    Args:
        path: the file to write (its folder is created when missing).
        write: writes the content to the temporary path it is given.
        suffix: ending of the temporary name after ``.tmp`` (e.g. ``.nii.gz``, for writers that pick the format
            from the file name).

    Raises:
        OSError: a failed write (a full disk), naming ``path``; the temporary file is removed and an existing
            ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and not isinstance(e, FileNotFoundError):
            raise OSError(e.errno, e.strerror, str(path)) from e  # a full disk: name the output, not the temporary
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    atomic_write_bytes(path, _write)
