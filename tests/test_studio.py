"""``modeledit studio``: its JSON API through Starlette's TestClient (real MobileNetV2, real Magenta, real
photos), and the page itself in Debian's headless Chromium driven by Selenium (real mouse strokes on the
canvas, the server a real ``modeledit studio`` process on a free loopback port)."""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from modeledit.studio.app import create_app  # noqa: E402
from modeledit.studio.session import Studio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def wait_job(client, timeout: float = 240.0) -> dict:
    """Poll the job endpoint as the page does, until the job has ended."""
    t0 = time.monotonic()
    while True:
        job = client.get("/api/job").json()["job"]
        if job is None or job["status"] != "running":
            return job
        assert time.monotonic() - t0 < timeout, f"job still running: {job}"
        time.sleep(0.1)


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def huge_png_header(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose header announces a huge picture (what a decompression bomb looks like before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


#: each bad upload and the words its one message must hold
BAD_UPLOADS = [
    ("empty.png", b"", "empty"),
    ("huge.png", huge_png_header(), "large"),
    ("notes.png", b"these are notes, not pixels\n" * 20, "not a readable image"),
    ("notes.txt", b"plain text", "not an image file"),
    ("../../etc/passwd.png", None, "folder part"),
]


@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    studio = Studio("mobilenet_v2")
    with TestClient(create_app(studio)) as c:
        job = wait_job(c)
        assert job["kind"] == "load model" and job["status"] == "done", job
        yield c
    assert not studio.workdir.exists(), "the session folder outlived the server"


def test_page_state_and_own_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="canvas"' in page.text and "/static/studio.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text          # nothing from outside: works offline
    js = client.get("/static/studio.js")
    assert js.status_code == 200 and "uploadFiles" in js.text
    assert "http://" not in js.text and "https://" not in js.text
    st = client.get("/api/state").json()
    assert st["model"]["loaded"] and st["model"]["name"] == "mobilenet_v2" and st["model"]["default_site"] == "features.17"
    assert "snow" in st["styles"] and st["job"]["status"] == "done"


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/files/..%2fpyproject.toml",
                                  "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/static/..%2f..%2fcli.py", "/api/images/i999/original.png",
                                  "/api/images/..%2f..%2fpyproject/original.png", "/api/nothing"])
def test_no_path_reaches_outside_the_studio(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "[project]" not in r.text and "root:" not in r.text


@pytest.mark.parametrize("name,data,words", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_get_one_message_each(client, name, data, words):
    import skimage.data

    data = png_bytes(skimage.data.chelsea()[:64, :64]) if data is None else data
    n_before = len(client.get("/api/state").json()["images"])
    r = client.post("/api/images/upload", files={"file": (name, data, "image/png")})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg and "Traceback" not in msg, msg
    assert len(client.get("/api/state").json()["images"]) == n_before        # nothing was added
    assert client.get("/").status_code == 200                                # and the server still serves


def test_upload_is_read_by_the_library_reader(client):
    import skimage.data

    r = client.post("/api/images/upload", files={"file": ("coffee.png", png_bytes(skimage.data.coffee()), "image/png")})
    assert r.status_code == 200, r.text
    image_id = r.json()["added"][0]
    im = next(i for i in client.get("/api/state").json()["images"] if i["id"] == image_id)
    assert im["name"] == "coffee.png" and im["preds"]["original"]["base"][0]["label"] == "espresso"
    assert client.post(f"/api/images/{image_id}/remove").status_code == 200


def test_mistakes_are_one_message(client):
    cases = [
        (client.post("/api/style", json={"name": "no such style"}), "unknown style"),
        (client.post("/api/images/photo", json={"name": "kitten"}), "unknown photo"),
        (client.post("/api/images/i999/mask", content=b"x"), "no image"),
        (client.post("/api/toggle"), "no edit"),
        (client.post("/api/save", json={"name": "x"}), "no edit"),
        (client.post("/api/images/folder", json={"path": "/no/such/folder"}), "does not exist"),
        (client.post("/api/load", json={"path": "/no/such/edit"}), "does not exist"),
        (client.post("/api/style", content=b"{not json"), "not JSON"),
    ]
    for r, words in cases:
        assert r.status_code == 400 and words in r.json()["error"], r.text
    r = client.post("/api/execute", json={"site": "features.17", "stats": "none"})
    assert r.status_code == 200
    job = wait_job(client)
    assert job["status"] == "failed" and "no exemplar" in job["error"] and "Traceback" not in job["error"]


def test_one_job_at_a_time_and_cancel(client):
    runner = client.app.state.runner
    release = threading.Event()

    def slow(job):
        for i in range(10_000):
            job.step(i, 10_000, "waiting")
            if release.wait(0.01):
                return
    runner.submit("slow", slow)
    r = client.post("/api/execute", json={"site": "features.17"})
    assert r.status_code == 400 and "still running" in r.json()["error"]
    assert client.post("/api/images/photo", json={"name": "chelsea"}).status_code == 400
    assert client.get("/api/state").json()["job"]["status"] == "running"        # the state a reloaded page reads
    assert client.post("/api/job/cancel").status_code == 200
    assert wait_job(client)["status"] == "cancelled"


def test_paint_restyle_execute_save_load(client, tmp_path):
    from modeledit import load_model
    from modeledit.edit import Edit
    from PIL import Image

    r = client.post("/api/images/photo", json={"name": "chelsea"})
    image_id = r.json()["added"][0]
    mask = np.zeros((224, 224), np.uint8)
    mask[40:200, 30:190] = 255
    assert client.post(f"/api/images/{image_id}/mask", content=png_bytes(mask), headers={"content-type": "image/png"}).status_code == 200
    served = np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/{image_id}/mask.png").content))) > 0
    assert (served == (mask > 0)).all()
    assert client.post("/api/style", json={"name": "brick"}).status_code == 200
    assert client.post(f"/api/images/{image_id}/counterfactual").status_code == 200
    assert wait_job(client)["status"] == "done"
    im = next(i for i in client.get("/api/state").json()["images"] if i["id"] == image_id)
    orig, cf = im["preds"]["original"]["base"][0]["label"], im["preds"]["counterfactual"]["base"][0]["label"]
    assert orig == "Egyptian cat" and cf != orig            # the brick cat is read as another class
    r = client.post("/api/execute", json={"site": "features.17", "rank": 1, "strength": 1.0, "stats": "photos"})
    assert r.status_code == 200
    job = wait_job(client)
    assert job["status"] == "done", job
    st = client.get("/api/state").json()
    im = next(i for i in st["images"] if i["id"] == image_id)
    assert st["show_edited"] and st["edit"]["site"] == "features.17"
    assert im["preds"]["counterfactual"]["edited"][0]["label"] == orig          # the rewrite sends the brick cat back
    saved = client.post("/api/save", json={"name": "cat-brick"}).json()["files"]
    for kind, url in saved.items():
        data = client.get(url)
        assert data.status_code == 200
        (tmp_path / url.rsplit("/", 1)[1]).write_bytes(data.content)
    lm = load_model("mobilenet_v2")
    edit = Edit.load(tmp_path / "cat-brick", model=lm.model)
    x = lm.preprocess(client.app.state.studio.images[image_id].counterfactual)  # already 224: kept as it is
    with edit.applied(lm.model):
        top = lm.topk(client.app.state.studio.images[image_id].counterfactual[None], 5)[0]
    assert x.shape[-1] == 224
    assert [t["label"] for t in top] == [t["label"] for t in im["preds"]["counterfactual"]["edited"]]
    assert client.post("/api/toggle").json()["show_edited"] is False
    assert client.post("/api/revert").status_code == 200
    assert client.get("/api/state").json()["edit"] is None
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(tmp_path.glob("cat-brick.*"))]
    r = client.post("/api/load", files=files)
    assert r.status_code == 200, r.text
    im = next(i for i in client.get("/api/state").json()["images"] if i["id"] == image_id)
    assert im["preds"]["counterfactual"]["edited"][0]["label"] == orig
    r = client.post("/api/effect", json={"set": "photos"})
    assert wait_job(client)["status"] == "done"
    eff = client.get("/api/state").json()["effect"]
    assert eff["n"] == 11 and 0 <= eff["changed"] <= eff["n"] and len(eff["thumbs"]) == eff["changed"]
    for th in eff["thumbs"]:
        assert client.get(f"/files/{th['file']}").status_code == 200
    one = files[:1]
    r = client.post("/api/load", files=one)
    assert r.status_code == 400 and "two files" in r.json()["error"]
    client.post("/api/revert")
