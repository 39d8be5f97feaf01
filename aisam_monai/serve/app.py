# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""
The browser editor's web application: a JSON API over :class:`~aisam_monai.serve.session.EditorSession` and the
static page (``aisam_monai/serve/static``, no build step). The API is documented in ``docs/editor.md``.

Safety: only NIfTI files under ``root`` can be opened (no ``..``, absolute paths or links leading outside), files
larger than ``max_bytes`` are refused, and when a ``token`` is set every request must carry it (header
``X-AISAM-Token`` or query parameter ``token``). Bad input gets a 4xx answer with a one-line ``detail``.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import os
import threading
from collections.abc import Callable
from urllib.parse import quote

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from aisam_monai.interactive.predictor import AISAMPredictor
from aisam_monai.io.nifti import write_labels_like
from aisam_monai.serve.session import EditError, EditorSession

__all__ = ["create_app", "NIFTI_SUFFIXES"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in NIFTI_SUFFIXES[::-1]:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class _Volumes:
    """The open sessions and the worker thread that fills in their automatic results."""

    def __init__(self, make_predictor: Callable[[], AISAMPredictor], batch_size: int) -> None:
        self.make_predictor = make_predictor
        self.batch_size = batch_size
        self.sessions: dict[str, EditorSession] = {}
        self.focus: dict[str, int] = {}
        self.by_path: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, path: str) -> tuple[str, EditorSession]:
        if path in self.by_path:
            sid = self.by_path[path]
            return sid, self.sessions[sid]
        session = EditorSession(self.make_predictor(), path, self.batch_size)
        sid = str(next(self._ids))
        self.sessions[sid], self.by_path[path], self.focus[sid] = session, sid, 0
        self._wake.set()
        return sid, session

    def close(self, sid: str) -> None:
        session = self.sessions.pop(sid)
        self.by_path.pop(session.image, None)
        self.focus.pop(sid, None)

    def get(self, sid: str) -> EditorSession:
        if sid not in self.sessions:
            raise HTTPException(404, f"no open volume with id {sid!r}.")
        return self.sessions[sid]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="aisam-auto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _work(self) -> None:
        while not self._stop.is_set():
            busy = False
            for sid, session in list(self.sessions.items()):
                with contextlib.suppress(Exception):  # a failing volume must not stop the others' progress
                    busy |= session.compute_next(around=self.focus.get(sid, 0))
            if not busy:
                self._wake.wait(timeout=1.0)
                self._wake.clear()


def create_app(
    make_predictor: Callable[[], AISAMPredictor],
    root: str,
    out_dir: str | None = None,
    token: str | None = None,
    max_bytes: int = 2 << 30,
    batch_size: int = 8,
) -> FastAPI:
    """
    The editor application.

    Args:
        make_predictor: returns a new predictor (own caches and edits; the model may be shared) for each volume.
        root: folder whose NIfTI files (at any depth) can be opened.
        out_dir: where Save writes (default: beside each input).
        token: secret every request must carry (``X-AISAM-Token`` header or ``token`` query parameter); None: none.
        max_bytes: largest file that is opened.
        batch_size: slices per model call while the automatic results are filled in.
    """
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: --root is not a folder.")
    volumes = _Volumes(make_predictor, batch_size)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        volumes.start()
        try:
            yield
        finally:
            volumes.stop()

    app = FastAPI(title="aisam editor", lifespan=lifespan)
    app.state.volumes = volumes

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if token is not None:
            given = request.headers.get("x-aisam-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token (X-AISAM-Token header or ?token=)."}, 401)
        return await call_next(request)

    @app.exception_handler(EditError)
    @app.exception_handler(ValueError)
    async def bad_input(_request: Request, error: Exception):
        return JSONResponse({"detail": str(error).strip().splitlines()[0] if str(error).strip() else "bad input."}, 400)

    @app.exception_handler(FileNotFoundError)
    async def not_found(_request: Request, error: Exception):
        return JSONResponse({"detail": str(error).strip().splitlines()[0]}, 404)

    @app.exception_handler(OSError)
    async def disk_error(_request: Request, error: OSError):  # a failed save: the previous output is left intact
        return JSONResponse({"detail": f"could not write: {error.strerror or error} ({error.filename or ''})."}, 500)

    def resolve(rel: str) -> str:
        """The real path of ``rel`` under ``root``, or a 4xx."""
        if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\x00" in rel:
            raise HTTPException(400, f"expected a path relative to the root, got {rel!r}.")
        path = os.path.realpath(os.path.join(root, rel))
        if os.path.commonpath([root, path]) != root:
            raise HTTPException(403, f"{rel}: outside the served folder.")
        if not path.endswith(NIFTI_SUFFIXES):
            raise HTTPException(400, f"{rel}: not a NIfTI file (.nii or .nii.gz).")
        if not os.path.isfile(path):
            raise HTTPException(404, f"{rel}: no such file under the served folder.")
        size = os.path.getsize(path)
        if size > max_bytes:
            raise HTTPException(413, f"{rel}: {size} bytes, more than the limit of {max_bytes}.")
        return path

    def session_of(sid: str) -> EditorSession:
        return volumes.get(sid)

    @app.get("/", response_class=HTMLResponse)
    def page():
        with open(os.path.join(STATIC, "index.html")) as f:
            html = f.read()
        if token is not None:  # the page's own files are fetched by the browser, which cannot add the header
            for name in ("editor.css", "editor.js"):
                html = html.replace(f"static/{name}", f"static/{name}?token={quote(token)}")
        return html

    @app.get("/static/{name}")
    def static(name: str):
        path = os.path.join(STATIC, os.path.basename(name))
        if not os.path.isfile(path):
            raise HTTPException(404, f"{name}: no such file.")
        return FileResponse(path)

    @app.get("/api/volumes")
    def list_volumes():
        found = []
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                inside = os.path.commonpath([root, os.path.realpath(path)]) == root
                if inside and name.endswith(NIFTI_SUFFIXES) and not name.endswith(("_seg.nii.gz", "_seg.nii")):
                    found.append(os.path.relpath(path, root))
        return {"root": root, "volumes": found}

    @app.post("/api/open")
    def open_volume(path: str = Body(..., embed=True)):
        sid, session = volumes.open(resolve(path))
        return {"id": sid, "path": path, **session.info()}

    @app.get("/api/sessions/{sid}")
    def session_info(sid: str):
        return {"id": sid, **session_of(sid).info()}

    @app.delete("/api/sessions/{sid}")
    def close(sid: str):
        session_of(sid)
        volumes.close(sid)
        return {"closed": sid}

    @app.get("/api/sessions/{sid}/slices/{z}")
    def get_slice(sid: str, z: int, image: bool = True):
        session = session_of(sid)
        if not 0 <= z < session.depth:
            raise HTTPException(404, f"slice {z} does not exist; the volume has slices 0..{session.depth - 1}.")
        volumes.focus[sid] = z
        return session.slice_payload(z, with_image=image)

    def answer(session: EditorSession, changed: list[int], z: int | None) -> dict:
        out = {"changed": changed}
        if isinstance(z, int) and 0 <= z < session.depth:
            out["slice"] = session.slice_payload(z, with_image=False)
        return out

    @app.post("/api/sessions/{sid}/edit")
    def edit(sid: str, request: dict = Body(...)):
        session = session_of(sid)
        return answer(session, session.edit(request), request.get("slice"))

    @app.post("/api/sessions/{sid}/undo")
    def undo(sid: str, slice: int | None = Body(None, embed=True)):
        session = session_of(sid)
        return answer(session, session.undo(), slice)

    @app.post("/api/sessions/{sid}/redo")
    def redo(sid: str, slice: int | None = Body(None, embed=True)):
        session = session_of(sid)
        return answer(session, session.redo(), slice)

    @app.post("/api/sessions/{sid}/decode_path")
    def set_decode_path(sid: str, decode_path: str = Body(..., embed=True)):
        session = session_of(sid)
        session.set_decode_path(decode_path)
        return session.info()

    @app.get("/api/sessions/{sid}/edits")
    def get_edits(sid: str):
        return session_of(sid).edits_record()

    @app.post("/api/sessions/{sid}/save")
    def save(sid: str):
        session = session_of(sid)
        folder = out_dir or os.path.dirname(session.image)
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, _stem(session.image))
        labels_path, edits_path = f"{stem}_seg.nii.gz", f"{stem}_edits.json"
        with session.lock:
            labels = session.labels()
            write_labels_like(labels_path, labels.numpy(), session.image)
            session.save_edits(edits_path)
        return {"labels": labels_path, "edits": edits_path}

    return app
