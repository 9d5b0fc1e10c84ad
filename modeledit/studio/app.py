"""The studio's web app (Starlette + Jinja2): one page, a JSON API, its own static files and the session's files.

Safe by construction: the page and its scripts are served from this package's ``static/`` folder (no CDN,
works offline); session files (saved edits, thumbnails) are served by name from the session's own table,
never by a path from the request; images by their id from memory. Every failure answers ``{"error":
"one sentence"}`` (400 for a user's mistake, 500 with a pointer to the log for a bug), never a traceback.
Long work (loading a model, restyling, statistics, the effect panel, sensitivity) runs as a job off the
request thread, one at a time, and the page polls it (a reload finds it where it is).

Example:
    >>> from starlette.testclient import TestClient
    >>> with TestClient(create_app(Studio("mobilenet_v2"))) as client:
    ...     client.get("/api/state").json()["model"]["name"]
    'mobilenet_v2'
"""
from __future__ import annotations

import functools
import io
import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

from modeledit.errors import user_message
from modeledit.studio.jobs import JobRunner, error_text
from modeledit.studio.session import MAX_UPLOAD_BYTES, SEGMENTER_CHOICES, Studio

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
_IMAGE_VIEW = re.compile(r"^(original|counterfactual|mask)$")


def _png(x: Any, mask: bool = False) -> bytes:
    """A (3, H, W) [0, 1] tensor (or an (H, W) bool mask) as PNG bytes."""
    import numpy as np
    from PIL import Image

    from modeledit.images import to_uint8

    buf = io.BytesIO()
    if mask:
        Image.fromarray((x.numpy().astype(np.uint8) * 255), "L").save(buf, format="PNG")
    else:
        Image.fromarray(to_uint8(x)).save(buf, format="PNG")
    return buf.getvalue()


def number(b: dict[str, Any], key: str, default: Any, kind: type = int) -> Any:
    """``b[key]`` as an int or float (``default`` when absent), or a ValueError saying which field is wrong."""
    v = b.get(key, default)
    try:
        return kind(v)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {str(v)[:40]!r}") from None


def create_app(studio: Studio, load_on_start: bool = True) -> Any:
    """The Starlette app serving ``studio``; on start it loads the studio's model in a job, on exit it
    removes the session folder."""
    import contextlib

    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    runner = JobRunner(context=studio.within)
    templates = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))

    def fail(exc: BaseException) -> JSONResponse:
        status = 400 if user_message(exc) is not None else 500
        return JSONResponse({"error": error_text(exc)}, status_code=status)

    def endpoint(fn: Callable[..., Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        """An API handler whose exceptions become one message; a dict result becomes JSON."""
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            try:
                out = await fn(request)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - one message for the page, the log keeps a bug's traceback
                return fail(exc)
            return out if isinstance(out, Response) else JSONResponse(out if out is not None else {"ok": True})
        return handler

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise ValueError("the request's body is not JSON; use the page's controls") from None
        if not isinstance(data, dict):
            raise ValueError("the request's body must be a JSON object; use the page's controls")
        return data

    def start(kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        job = runner.submit(kind, lambda job: fn(*args, job=job, **kwargs))
        return {"job": job.to_dict()}

    async def one_file(request: Request, field: str = "file") -> tuple[str, bytes]:
        """The one uploaded file of a multipart request, refused above the size limit before it is read."""
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_UPLOAD_BYTES + 65536:
            raise ValueError(f"the upload is {length / 2**20:.1f} MB, more than the {MAX_UPLOAD_BYTES // 2**20} MB an upload may be; "
                             "make it smaller")
        form = await request.form(max_files=2, max_fields=4)
        up = form.get(field)
        if up is None or not hasattr(up, "read"):
            raise ValueError("no file arrived; choose a file to upload")
        data = await up.read(MAX_UPLOAD_BYTES + 1)
        return str(up.filename or ""), data

    # -- page and state

    async def index(request: Request) -> HTMLResponse:
        from modeledit.eval.photos import PHOTOS

        choices = await run_in_threadpool(studio.model_choices)
        html = templates.get_template("index.html").render(
            models=[c for c in choices if c["offline"]], unavailable=[c for c in choices if not c["offline"]], current=studio.model_name, photos=list(PHOTOS), segmenters=list(SEGMENTER_CHOICES),
            world_splits=["test", "val", "train"])
        return HTMLResponse(html)

    @endpoint
    async def state(request: Request) -> dict[str, Any]:
        return {**studio.state(), "job": runner.snapshot()}

    @endpoint
    async def job(request: Request) -> dict[str, Any]:
        return {"job": runner.snapshot()}

    @endpoint
    async def cancel(request: Request) -> dict[str, Any]:
        j = runner.cancel()
        return {"job": None if j is None else j.to_dict()}

    @endpoint
    async def model(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("load model", studio.load_model, str(b.get("name", "")), b.get("weights"))

    # -- images

    @endpoint
    async def upload(request: Request) -> dict[str, Any]:
        runner.require_idle()
        name, data = await one_file(request)
        im = await run_in_threadpool(studio.add_upload, name, data)
        return {"added": [im.id]}

    @endpoint
    async def add_photo(request: Request) -> dict[str, Any]:
        runner.require_idle()
        b = await body(request)
        im = await run_in_threadpool(studio.add_photo, str(b.get("name", "")))
        return {"added": [im.id]}

    @endpoint
    async def add_folder(request: Request) -> dict[str, Any]:
        runner.require_idle()
        b = await body(request)
        ims = await run_in_threadpool(studio.add_folder, str(b.get("path", "")).strip(), number(b, "limit", 8))
        return {"added": [im.id for im in ims]}

    @endpoint
    async def add_world(request: Request) -> dict[str, Any]:
        runner.require_idle()
        b = await body(request)
        ims = await run_in_threadpool(studio.add_world, str(b.get("split", "test")), number(b, "n", 4), number(b, "start", 0))
        return {"added": [im.id for im in ims]}

    @endpoint
    async def image_file(request: Request) -> Response:
        view = request.path_params["view"]
        if not _IMAGE_VIEW.match(view):
            raise HTTPException(404)
        im = studio.images.get(request.path_params["image_id"])
        if im is None:
            raise HTTPException(404)
        if view == "mask":
            if im.mask is None:
                raise HTTPException(404)
            data = _png(im.mask, mask=True)
        elif view == "counterfactual":
            if im.counterfactual is None:
                raise HTTPException(404)
            data = _png(im.counterfactual)
        else:
            data = _png(im.x)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @endpoint
    async def image_action(request: Request) -> dict[str, Any]:
        image_id, action = request.path_params["image_id"], request.path_params["action"]
        if action == "mask":
            data = await request.body()
            await run_in_threadpool(studio.set_mask_png, image_id, data)
        elif action == "clear":
            studio.clear_mask(image_id)
        elif action == "exemplar":
            studio.get_image(image_id).exemplar = bool((await body(request)).get("on", True))
        elif action == "remove":
            runner.require_idle()
            studio.remove_image(image_id)
        elif action == "segment":
            b = await body(request)
            studio.get_image(image_id)
            return start("segment", studio.segment, image_id, str(b.get("choice", "")), str(b.get("concept", "")))
        elif action == "counterfactual":
            studio.get_image(image_id)
            return start("counterfactual", studio.counterfactual, image_id)
        else:
            raise HTTPException(404)
        return {"ok": True}

    # -- style

    @endpoint
    async def style(request: Request) -> dict[str, Any]:
        b = await body(request)
        studio.set_style(str(b.get("name", "")), number(b, "style_image", 0))
        return {"style": studio.style}

    @endpoint
    async def style_upload(request: Request) -> dict[str, Any]:
        name, data = await one_file(request)
        key = await run_in_threadpool(studio.add_style_upload, name, data)
        return {"style": key}

    # -- the edit

    @endpoint
    async def execute(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("execute", studio.execute, str(b.get("site", "-1")), b.get("rank", 1), number(b, "strength", 1.0, float),
                     str(b.get("mode", "whole")), str(b.get("stats", "photos")))

    @endpoint
    async def recommend(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("recommend site", studio.recommend_site, str(b.get("stats", "photos")), number(b, "n", 64),
                     budget=number(b, "budget", None, float) if b.get("budget") is not None else None)

    @endpoint
    async def toggle(request: Request) -> dict[str, Any]:
        return {"show_edited": studio.toggle()}

    @endpoint
    async def revert(request: Request) -> dict[str, Any]:
        runner.require_idle()
        await run_in_threadpool(studio.revert)
        return {"ok": True}

    @endpoint
    async def save(request: Request) -> dict[str, Any]:
        b = await body(request)
        names = await run_in_threadpool(studio.save_edit, str(b.get("name", "")))
        return {"files": {k: f"/files/{v}" for k, v in names.items()}}

    @endpoint
    async def load(request: Request) -> dict[str, Any]:
        runner.require_idle()
        if request.headers.get("content-type", "").startswith("multipart/"):
            length = int(request.headers.get("content-length") or 0)
            if length > 8 * MAX_UPLOAD_BYTES:
                raise ValueError("the edit's files are larger than this studio takes; give their path on the server instead")
            form = await request.form(max_files=2, max_fields=2)
            files = {}
            for up in form.getlist("files"):
                if hasattr(up, "read"):
                    files[str(up.filename or "")] = await up.read()
            info = await run_in_threadpool(studio.load_edit, files, None)
        else:
            info = await run_in_threadpool(studio.load_edit, None, str((await body(request)).get("path", "")))
        return {"edit": info}

    async def session_file(request: Request) -> Response:
        name = request.path_params["name"]
        path = studio.files.get(name)
        if path is None or not path.is_file():
            raise HTTPException(404)
        kind = "image/png" if name.endswith(".png") else "application/json" if name.endswith(".json") else "application/octet-stream"
        headers = {"Cache-Control": "no-store"}       # thumbnails keep their names across runs: never show a stale one
        if kind != "image/png":
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(path.read_bytes(), media_type=kind, headers=headers)

    # -- effect and sensitivity

    @endpoint
    async def effect(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("effect", studio.effect_panel, str(b.get("set", "")), str(b.get("concept", "")), str(b.get("segmenter", "")))

    @endpoint
    async def sensitivity(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("sensitivity", studio.run_sensitivity, str(b.get("set", "")), str(b.get("concepts", "")).split(","),
                     str(b.get("styles", "")).split(","), str(b.get("segmenter", "")), str(b.get("labels", "given")))

    @endpoint
    async def cell(request: Request) -> dict[str, Any]:
        b = await body(request)
        return start("cell images", studio.cell_images, str(b.get("concept", "")), str(b.get("style", "")), number(b, "class_index", -1))

    @endpoint
    async def cell_use(request: Request) -> dict[str, Any]:
        runner.require_idle()
        ims = await run_in_threadpool(studio.cell_to_exemplars)
        return {"added": [im.id for im in ims]}

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 404)
        msg = "not found" if code == 404 else "method not allowed" if code == 405 else "bad request"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"{msg}: {request.url.path[:80]}; use the page's controls"}, status_code=code)
        return Response(msg, status_code=code, media_type="text/plain")

    async def bug(request: Request, exc: Exception) -> Response:
        return fail(exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        if load_on_start:
            runner.submit("load model", lambda job: studio.load_model(studio.model_name, studio.weights, job=job))
        try:
            yield
        finally:
            runner.cancel()
            runner.wait(timeout=10)
            studio.close()

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/job", job),
        Route("/api/job/cancel", cancel, methods=["POST"]),
        Route("/api/model", model, methods=["POST"]),
        Route("/api/images/upload", upload, methods=["POST"]),
        Route("/api/images/photo", add_photo, methods=["POST"]),
        Route("/api/images/folder", add_folder, methods=["POST"]),
        Route("/api/images/world", add_world, methods=["POST"]),
        Route("/api/images/{image_id}/{view}.png", image_file),
        Route("/api/images/{image_id}/{action}", image_action, methods=["POST"]),
        Route("/api/style", style, methods=["POST"]),
        Route("/api/style/upload", style_upload, methods=["POST"]),
        Route("/api/execute", execute, methods=["POST"]),
        Route("/api/recommend", recommend, methods=["POST"]),
        Route("/api/toggle", toggle, methods=["POST"]),
        Route("/api/revert", revert, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/api/load", load, methods=["POST"]),
        Route("/api/effect", effect, methods=["POST"]),
        Route("/api/sensitivity", sensitivity, methods=["POST"]),
        Route("/api/cell", cell, methods=["POST"]),
        Route("/api/cell/use", cell_use, methods=["POST"]),
        Route("/files/{name}", session_file),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found, Exception: bug})
    app.state.studio, app.state.runner = studio, runner
    return app


def serve(host: str = "127.0.0.1", port: int = 8765, model: str | None = None, weights: str | None = None,
          runtime: Any = None) -> None:
    """Run the studio until Ctrl-C (``modeledit studio``); its session folder is removed on exit. ``runtime``: a
    :class:`modeledit.device.Runtime` (None: ``auto`` at fp32), the device and precision of everything it runs."""
    import uvicorn

    from modeledit.studio.session import DEFAULT_MODEL

    studio = Studio(model or DEFAULT_MODEL, weights, runtime=runtime)
    app = create_app(studio)
    log.info("modeledit studio on http://%s:%d/ on %s at %s (session folder %s)", host, port, studio.runtime.device,
             studio.runtime.precision, studio.workdir)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        studio.close()
