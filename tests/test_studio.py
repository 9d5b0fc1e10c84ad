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
import threading
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

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
        (client.post("/api/images/world", json={"split": "test", "n": "many"}), "n must be a number"),
        (client.post("/api/images/world", json={"split": "test", "start": -3}), "start at index 0"),
        (client.post("/api/images/world", json={"split": "nowhere"}), "unknown world split"),
        (client.post("/api/images/folder", json={"path": str(ROOT / "pyproject.toml")}), "is a file"),
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
    # the loaded edit names its exemplar (saved by the studio): chelsea is left out of the 11 photos
    assert eff["n"] == 10 and eff["n_set"] == 11 and eff["excluded"] == ["chelsea"] and eff["exemplars_from"] == "edit"
    assert 0 <= eff["changed"] <= eff["n"] and len(eff["thumbs"]) == eff["changed"]
    for th in eff["thumbs"]:
        assert client.get(f"/files/{th['file']}").status_code == 200
    one = files[:1]
    r = client.post("/api/load", files=one)
    assert r.status_code == 400 and "two files" in r.json()["error"]
    client.post("/api/revert")


# ------------------------------------------------------------------------------------------------
# the page in a real browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def wait_loaded(proc, url: str, output: Any = lambda: "", timeout: float = 180) -> dict:
    """Poll a ``modeledit studio`` process (a warm_cli run) at ``url`` until its model is loaded; the state's model. The process
    must stay alive meanwhile (``output()``: what it wrote, for the failure message)."""
    t0 = time.monotonic()
    while True:
        assert proc.poll() is None, output()
        try:
            model = get_json(f"{url}/api/state")["model"]
            if model["loaded"]:
                return model
        except OSError:
            pass
        assert time.monotonic() - t0 < timeout, "the studio did not come up"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory, warm_cli):
    """``modeledit studio --model mobilenet_v2`` on a free loopback port, as a user starts it (a process forked
    from the warm server, tests/warm_cli.py); stopped (SIGTERM) at the end, its session folder must be gone."""
    import re

    port = free_port()
    log = tmp_path_factory.mktemp("studio") / "server.log"
    out = log.open("w")
    proc = warm_cli.start(["studio", "--model", "mobilenet_v2", "--port", str(port)], cwd=ROOT, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_loaded(proc, url, lambda: log.read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()
    text = log.read_text()
    folder = re.search(r"session folder (\S+)\)", text)
    assert folder and not Path(folder.group(1)).exists(), text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    from tests.browser import chromium

    exe, driver_exe = chromium(), shutil.which("chromedriver")
    assert exe and driver_exe, "Debian's chromium and chromium-driver are not installed (make test installs them)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1150",
              "--disable-background-networking", "--disable-component-update", "--no-first-run", "--hide-scrollbars"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_exe), options=opts)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def until(driver, what, timeout: float = 180.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: what(d))


def idle(driver, timeout: float = 180.0) -> None:
    """Wait until no request or job of the page is in flight."""
    time.sleep(0.3)
    until(driver, lambda d: d.execute_script("return document.body.dataset.busy") == "0", timeout)


def top5(driver, list_id: str) -> list[tuple[str, float]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' li')].map(li => [li.dataset.label, Number(li.dataset.prob)])", f"#{list_id}")


def shot(driver, name: str) -> None:
    """Screenshots for the README, when MODELEDIT_STUDIO_SHOTS names a folder."""
    folder = os.environ.get("MODELEDIT_STUDIO_SHOTS")
    if folder:
        until(driver, lambda d: d.execute_script("return [...document.images].every((i) => i.complete)"), 30)   # no half-loaded view
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_paint_restyle_execute_save_in_the_browser(server, browser, tmp_path, warm_cli):
    import skimage.data
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = browser
    d.get(server + "/")
    idle(d)
    assert "mobilenet_v2" in d.find_element(By.ID, "model-info").text
    Select(d.find_element(By.ID, "photo-select")).select_by_value("chelsea")
    d.find_element(By.ID, "photo-add").click()
    idle(d)
    image_id = get_json(server + "/api/state")["images"][-1]["id"]
    until(d, lambda d: d.execute_script("return document.body.dataset.canvas") == image_id, 30)

    # paint the cat with the mouse: a thick brush in strokes across its body
    d.execute_script("const b = document.getElementById('brush-size'); b.value = 30;")
    canvas = d.find_element(By.ID, "canvas")
    chain = ActionChains(d, duration=10)
    for y in range(-110, 111, 40):
        chain.move_to_element_with_offset(canvas, -120, y).click_and_hold()
        for x in range(-80, 121, 40):
            chain.move_to_element_with_offset(canvas, x, y)
        chain.release()
    chain.perform()
    idle(d)
    im = next(i for i in get_json(server + "/api/state")["images"] if i["id"] == image_id)
    assert im["mask_pixels"] > 0.5 * 224 * 224, im["mask_pixels"]

    Select(d.find_element(By.ID, "style-select")).select_by_value("brick")
    idle(d)
    d.find_element(By.ID, "cf-button").click()
    idle(d)
    original = d.find_element(By.ID, "orig-top1").text
    restyled = d.find_element(By.ID, "cf-top1").text
    assert original.startswith("Egyptian cat") and restyled and not restyled.startswith("Egyptian cat"), (original, restyled)
    shot(d, "paint")

    d.find_element(By.ID, "stats").clear()
    d.find_element(By.ID, "stats").send_keys("photos")
    d.find_element(By.ID, "execute").click()
    until(d, lambda d: d.execute_script("return document.body.dataset.job || ''").endswith(":running")
          or "EDITED" in d.find_element(By.ID, "edit-info").text, 60)
    d.refresh()                                  # the job lives on the server: a reloaded page follows it to its end
    idle(d)
    until(d, lambda d: "EDITED" in d.find_element(By.ID, "edit-info").text, 60)
    moved = d.find_element(By.ID, "cf-top1").text
    assert moved.startswith("Egyptian cat"), (restyled, moved)       # the exemplar's top-1 moves back to its class
    assert top5(d, "pred-counterfactual-edited")[0][0] == "Egyptian cat"
    shot(d, "edited")

    d.find_element(By.ID, "save-name").clear()
    d.find_element(By.ID, "save-name").send_keys("browser-edit")
    d.find_element(By.ID, "save").click()
    idle(d)
    for kind in ("safetensors", "json"):
        href = d.find_element(By.ID, f"dl-{kind}").get_attribute("href")
        with urllib.request.urlopen(href, timeout=30) as r:
            (tmp_path / href.rsplit("/", 1)[1]).write_bytes(r.read())

    # the saved pair, applied by the command line to the same photo, predicts what the page shows
    from modeledit.images import save_image

    save_image(skimage.data.chelsea(), tmp_path / "chelsea.png")
    out = warm_cli.run(["apply", "mobilenet_v2", str(tmp_path / "browser-edit"), str(tmp_path / "chelsea.png"), "--json"],
                       cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    cli = json.loads(out.stdout)[0]
    for which, list_id in (("before", "pred-original-base"), ("after", "pred-original-edited")):
        page = top5(d, list_id)
        assert [p["label"] for p in cli[which]] == [label for label, _ in page]
        assert np.allclose([p["prob"] for p in cli[which]], [prob for _, prob in page], atol=1e-5)
    assert cli["before"] != cli["after"]          # the edit moved the original's probabilities too (slightly)
    assert d.find_element(By.ID, "model-device").text.startswith("on cpu")        # where it runs, in the status line

    # its effect on the shipped photos: the exemplar left out, n beside every estimate
    import re

    Select(d.find_element(By.ID, "segmenter-select")).select_by_value("object (GrabCut)")
    d.find_element(By.ID, "effect-concept").send_keys("object")
    d.find_element(By.ID, "effect").click()
    idle(d, 400)
    summary = d.find_element(By.ID, "effect-summary").text
    assert summary.startswith("10 held-out images of photos: its 11 less the edit's 1 exemplar image(s), chelsea."), summary
    assert re.search(r"Predictions changed: \d+ of 10 \(clean change [\d.]+%, n = 10\); accuracy [\d.]+% → [\d.]+% \(n = 10\)", summary), summary
    cf = d.find_element(By.ID, "effect-counterfactual").text
    n_cf = int(re.search(r"on (\d+) of the 10 image", cf).group(1))
    assert cf.endswith(f"(n = {n_cf})"), cf
    rows = d.execute_script("return [...document.querySelectorAll('#effect-out table.classes tr')].slice(1)"
                            ".map(tr => [...tr.cells].map(td => td.textContent))")
    assert rows and sum(int(r[1]) for r in rows) == n_cf
    for r in rows:                                   # class, n, then every count as "k of n"
        n, (eb, of_b), (ea, of_a), (co, of_c), (ma, of_m) = int(r[1]), *(map(int, c.split(" of ")) for c in r[2:])
        assert of_b == of_a == n and of_c == eb and of_m == n - eb and co <= eb, r


def test_bad_uploads_in_the_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server + "/")
    idle(d)
    n_images = len(get_json(server + "/api/state")["images"])
    for name, data, words in BAD_UPLOADS:
        if data is None:   # a file name no file system here holds: the page's own upload with that name
            d.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const f = new File([new Uint8Array([137, 80, 78, 71])], arguments[0], {type: 'image/png'});"
                "window.uploadFiles([f]).then(done);", name)
        else:
            path = tmp_path / name
            path.write_bytes(data)
            d.find_element(By.ID, "upload").send_keys(str(path))
        idle(d)
        msg = d.find_element(By.ID, "message")
        assert msg.is_displayed() and words in msg.text, (name, msg.text)
        assert "\n" not in msg.text and "Traceback" not in msg.text and len(d.find_elements(By.CSS_SELECTOR, "[role=alert]")) == 1
        if name == "huge.png":
            shot(d, "bad-upload")
        assert len(get_json(server + "/api/state")["images"]) == n_images      # still serving, nothing added


def test_world_scenes_oracle_effect_sensitivity_and_cancel():
    """The embedded default's path: world scenes, the oracle's mask, a rewrite with world statistics, the
    effect on restyled held-out scenes, the sensitivity heatmap, a cell's images turned into exemplars,
    and a cancelled statistics job that leaves the edit as it was."""
    from starlette.testclient import TestClient

    studio = Studio("world_vgg")
    with TestClient(create_app(studio)) as c:
        assert wait_job(c)["status"] == "done"
        ids = c.post("/api/images/world", json={"split": "test", "n": 2}).json()["added"]
        assert sorted(studio.images[ids[0]].meta["masks"]) == ["sand", "truck", "wheel", "window"]
        r = c.post(f"/api/images/{ids[1]}/segment", json={"choice": "oracle (world scenes)", "concept": "sand"})
        assert r.status_code == 200 and wait_job(c)["status"] == "failed"        # scene 1 holds no sand: one message
        assert "found no 'sand'" in c.get("/api/job").json()["job"]["error"]
        c.post(f"/api/images/{ids[1]}/exemplar", json={"on": False})
        c.post(f"/api/images/{ids[0]}/segment", json={"choice": "oracle (world scenes)", "concept": "sand"})
        assert wait_job(c)["status"] == "done"
        assert studio.images[ids[0]].mask.equal(torch_bool(studio.images[ids[0]].meta["masks"]["sand"]))
        c.post("/api/style", json={"name": "snow"})
        # where to edit: the many-rules module's ranking where it is installed, one message where it is not. The truck
        # is still a truck with its sand snowed: nothing to correct, so no site is proposed (the first one was, before)
        c.post("/api/recommend", json={"stats": "world:val:64"})
        job = wait_job(c)
        error = c.get("/api/job").json()["job"].get("error") or ""
        if has_site_ranking():
            assert job["status"] == "failed" and "no error to correct" in error, error
            boat = c.post("/api/images/world", json={"split": "test", "n": 5}).json()["added"][4]   # a sailboat: snowy water
            c.post(f"/api/images/{boat}/segment", json={"choice": "oracle (world scenes)", "concept": "water"})  # -> airplane
            assert wait_job(c)["status"] == "done"
            c.post(f"/api/images/{ids[0]}/exemplar", json={"on": False})
            c.post("/api/recommend", json={"stats": "world:val:64", "budget": 0.05})   # one exemplar, C from 64 images: 3 pp
            assert wait_job(c)["status"] == "done", c.get("/api/job").json()["job"].get("error")
            rec = c.get("/api/state").json()["recommendation"]
            assert sorted(r["site"] for r in rec["rows"]) == sorted(studio.model_info()["sites"]) and rec["rows"][0]["val_corrected"] > 0
            assert studio.model_info()["default_site"] == rec["rows"][0]["site"] and rec["n_clean"] == 64 and rec["budget"] == 0.05
            c.post(f"/api/images/{boat}/exemplar", json={"on": False})
            c.post(f"/api/images/{ids[0]}/exemplar", json={"on": True})
        else:
            assert job["status"] == "failed" and "choose the site by hand" in error
        c.post("/api/execute", json={"site": "-1", "stats": "world:val:64"})
        job = wait_job(c)
        assert job["status"] == "done", job
        edit_info = c.get("/api/state").json()["edit"]
        assert edit_info["site"] == studio.model_info()["sites"][-1] and edit_info["exemplars"] == ["test 0 (truck)"]

        c.post("/api/effect", json={"set": "world:test:100", "concept": "sand", "segmenter": "oracle (world scenes)"})
        assert wait_job(c)["status"] == "done"
        eff = c.get("/api/state").json()["effect"]
        assert eff["n"] == 99 and eff["excluded"] == ["test 0 (truck)"] and eff["concept"] == "sand" and eff["n_counterfactual"] == sum(r["n"] for r in eff["classes"]) > 0
        assert all(r["corrected"] <= r["errors_before"] for r in eff["classes"])

        c.post("/api/sensitivity", json={"set": "world:test:60", "concepts": "sand,road", "styles": "snow",
                                         "segmenter": "oracle (world scenes)", "labels": "given"})
        assert wait_job(c)["status"] == "done"
        sens = c.get("/api/state").json()["sensitivity"]
        assert [(x["concept"], x["style"]) for x in sens["cells"]] == [("sand", "snow"), ("road", "snow")]
        # the audit of the edited model leaves out the scene it learnt from, as the effect panel does
        assert (sens["n"], sens["n_set"], sens["excluded"]) == (59, 60, ["test 0 (truck)"])
        assert sum(r["n_with_concept"] for r in sens["cells"][0]["rows"]) == sens["cells"][0]["n"]
        cell = max(sens["cells"], key=lambda x: x["drop"] or 0)
        row = next(r for r in cell["rows"] if r["n_with_concept"])
        c.post("/api/cell", json={"concept": cell["concept"], "style": cell["style"], "class_index": row["class_index"]})
        assert wait_job(c)["status"] == "done"
        shown = c.get("/api/state").json()["cell"]
        assert shown["class_name"] == row["class_name"] and shown["items"] and 0 not in [it["index"] for it in shown["items"]]
        n_before = len(studio.images)
        added = c.post("/api/cell/use").json()["added"]
        assert len(studio.images) == n_before + len(added) and all(studio.images[i].mask is not None for i in added)

        # statistics over many scenes, cancelled midway: the job ends as cancelled and the edit stays as it was
        c.post("/api/execute", json={"site": "-2", "stats": "world:train:4000"})
        t0 = time.monotonic()
        while c.get("/api/job").json()["job"]["done"] < 20 and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        c.post("/api/job/cancel")
        assert wait_job(c)["status"] == "cancelled"
        assert c.get("/api/state").json()["edit"] == edit_info

        # another model: the images stay (refitted, masks kept), the edit and its results go; a wrong name is one message
        masked = [i for i, im in studio.images.items() if im.mask is not None]
        c.post("/api/model", json={"name": "world_resnet"})
        assert wait_job(c)["status"] == "done"
        st = c.get("/api/state").json()
        assert st["model"]["name"] == "world_resnet" and st["edit"] is None and st["sensitivity"] is None
        assert all(studio.images[i].mask is not None for i in masked) and all(im["preds"]["original"]["base"] for im in st["images"])
        c.post("/api/model", json={"name": "world_resnett"})
        job = wait_job(c)
        assert job["status"] == "failed" and "unknown model 'world_resnett'" in job["error"], job
        c.post("/api/model", json={"name": "world_vgg", "weights": "/no/such/checkpoint.pt"})
        job = wait_job(c)
        assert job["status"] == "failed" and "does not exist" in job["error"], job
        assert c.get("/api/state").json()["model"]["name"] == "world_resnet"     # the failed loads changed nothing


def torch_bool(array):
    import torch

    return torch.from_numpy(np.asarray(array, dtype=bool))


def has_site_ranking() -> bool:
    import importlib.util

    if importlib.util.find_spec("modeledit.rules") is None:
        return False
    import modeledit.rules as rules

    return callable(getattr(rules, "rank_sites", None))


def test_segmenters_and_an_uploaded_style(client):
    """A mask started from MediaPipe (person) and from GrabCut (object), and a style image of one's own."""
    import skimage.data

    image_id = client.post("/api/images/photo", json={"name": "astronaut"}).json()["added"][0]
    studio = client.app.state.studio
    for choice in ("person (MediaPipe)", "object (GrabCut)"):
        client.post(f"/api/images/{image_id}/segment", json={"choice": choice})
        job = wait_job(client)
        assert job["status"] == "done", job
        m = studio.images[image_id].mask
        assert m.shape == (224, 224) and 0.05 < float(m.float().mean()) < 0.95, (choice, float(m.float().mean()))
    r = client.post("/api/style/upload", files={"file": ("gravel.png", png_bytes(np.stack([skimage.data.gravel()] * 3, -1)), "image/png")})
    assert r.status_code == 200 and r.json()["style"] == "upload: gravel.png"
    assert client.get("/api/state").json()["style"] == "upload: gravel.png"
    client.post(f"/api/images/{image_id}/counterfactual")
    assert wait_job(client)["status"] == "done"
    im = studio.images[image_id]
    outside = ~im.mask
    assert im.counterfactual[:, outside].equal(im.x[:, outside]) and not im.counterfactual[:, im.mask].equal(im.x[:, im.mask])
    bad = client.post("/api/style/upload", files={"file": ("style.gif", b"GIF89a", "image/gif")})
    assert bad.status_code == 400 and "not an image file" in bad.json()["error"]
    client.post(f"/api/images/{image_id}/remove")
    client.post("/api/style", json={"name": "snow"})


# ------------------------------------------------------------------------------------------------
# where the studio runs: --device, --precision, --deterministic (the session owns its Runtime)


def test_studio_command_takes_the_runtime_flags(warm_cli, tmp_path):
    """``modeledit studio --device cpu --precision bf16 --deterministic`` serves a model on the CPU predicting in bf16,
    and the page's state (its status line) says so."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = warm_cli.start(["studio", "--model", "world_vgg", "--port", str(port), "--device", "cpu", "--precision", "bf16",
                               "--deterministic"], cwd=ROOT, stdout=out, stderr=out)
    try:
        model = wait_loaded(proc, f"http://127.0.0.1:{port}", lambda: log.read_text()[-3000:])
        assert model["runtime"]["device"] == "cpu" and model["runtime"]["precision"] == "bf16" and model["runtime"]["deterministic"]
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert 'id="model-device"' in page
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is visible here: --device cuda is accepted")
def test_studio_refuses_cuda_without_a_gpu_in_one_line(capsys):
    # in-process (the refusals come before any server starts); test_studio_command_takes_the_runtime_flags runs the command
    from modeledit.cli import main

    assert main(["studio", "--device", "cuda", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no CUDA GPU is visible" in lines[0] and "Traceback" not in err, err
    assert main(["studio", "--device", "cpu", "--precision", "fp16", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "fp16 needs a CUDA device" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")   # Python's own default outside pytest (starlette's import)
def test_studio_never_starts_on_random_weights(capsys):
    from modeledit.cli import main

    for weights, words in (("random", "does not run models on random weights"), ("/no/such/resnet50.pth", "is not a file")):
        assert main(["studio", "--model", "resnet50", "--weights", weights, "--device", "cpu", "--port", str(free_port())]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err


def forward_recorder(module):
    """Every forward of ``module``: its input's device and whether a bf16 autocast was on (a hook, removed by the caller)."""
    import torch

    seen: list[tuple[str, bool]] = []

    def hook(mod, inputs):
        x = inputs[0]
        on = torch.is_autocast_enabled(x.device.type) and torch.get_autocast_dtype(x.device.type) == torch.bfloat16
        seen.append((x.device.type, bool(on)))
    return seen, module.register_forward_pre_hook(hook)


def test_session_runs_everything_on_its_runtime(tmp_path):
    """The session's model sits on the runtime's device; every prediction (images added, counterfactuals, the
    effect panel, the predictions refreshed after an edit) runs there under its bf16 autocast, while the statistics
    and the solve run in float32; the jobs' threads see the runtime; the saved edit records it."""
    from modeledit.device import Runtime, current_runtime
    from modeledit.studio.jobs import JobRunner

    rt = Runtime("cpu", "bf16", deterministic=True)
    st = Studio("world_vgg", runtime=rt, workdir=str(tmp_path))
    try:
        st.load_model("world_vgg")
        assert st.lm.precision == "bf16" and {p.device.type for p in st.lm.model.parameters()} == {"cpu"}
        assert st.model_info()["runtime"]["device"] == "cpu" and st.model_info()["runtime"]["precision"] == "bf16"
        runner = JobRunner(context=st.within)
        assert runner.wait(runner.submit("probe", lambda job: current_runtime()).id).result is rt   # a job's thread has it
        seen, handle = forward_recorder(st.lm.model)
        try:
            ims = st.add_world("test", 2)
            st.segment(ims[0].id, "oracle (world scenes)", "sand")
            st.get_image(ims[1].id).exemplar = False
            st.counterfactual(ims[0].id)
            assert seen and all(s == ("cpu", True) for s in seen), seen              # predictions: bf16 on the CPU
            seen.clear()
            with st.within():
                st.execute("-1", stats="world:val:16")
            assert {d for d, _ in seen} == {"cpu"}
            assert ("cpu", False) in seen and ("cpu", True) in seen, seen            # statistics/solve in fp32; predictions bf16
            seen.clear()
            eff = st.effect_panel("world:test:12")
            assert seen and all(s == ("cpu", True) for s in seen), seen
            assert eff["n"] == 11 and eff["n_set"] == 12 and eff["excluded"] == [ims[0].name]
        finally:
            handle.remove()
        names = st.save_edit("rt")
        record = json.loads((st.workdir / "edits" / names["json"]).read_text())
        assert record["metrics"]["runtime"]["device"] == "cpu" and record["metrics"]["runtime"]["precision"] == "bf16"
        assert record["metrics"]["runtime"]["deterministic"] is True
    finally:
        st.close()


def test_bf16_on_the_cpu_predicts_a_shipped_photo_as_fp32_does(tmp_path):
    """The studio's prediction for chelsea at bf16 (the CPU's autocast) has fp32's top-1. Measured on all 11 shipped
    photos (docs/studio.md): MobileNetV2 11 of 11 equal, EfficientNet-Lite0 10 of 11."""
    from modeledit.device import Runtime

    tops = {}
    for precision in ("fp32", "bf16"):
        st = Studio("mobilenet_v2", runtime=Runtime("cpu", precision), workdir=str(tmp_path))
        try:
            st.load_model("mobilenet_v2")
            tops[precision] = st.add_photo("chelsea").preds["original"]["base"]
        finally:
            st.close()
    assert tops["fp32"][0]["label"] == tops["bf16"][0]["label"] == "Egyptian cat"
    assert abs(tops["fp32"][0]["prob"] - tops["bf16"][0]["prob"]) < 0.05


# ------------------------------------------------------------------------------------------------
# the model list: only models that load offline are offered


def test_model_list_offers_only_models_that_load_offline(client, tmp_path):
    """Enabled options are the zoo entries with real weights here; resnet*/vgg* are shown disabled with the library's
    refusal as the reason; the library agrees with the page; picking one anyway (the API) is one message."""
    import html
    import re

    from modeledit import load_model

    page = client.get("/").text
    select = page[page.index('<select id="model-select">'):page.index("</select>", page.index('<select id="model-select">'))]
    options = re.findall(r'<option value="([^"]+)"( disabled title="([^"]*)")?', select)
    enabled = {html.unescape(v) for v, dis, _ in options if not dis}
    disabled = {html.unescape(v): html.unescape(why) for v, dis, why in options if dis}
    assert {"mobilenet_v2", "efficientnet_lite0", "world_vgg", "world_resnet", "world_vgg_text", "clip:world-RN"} <= enabled
    assert {"resnet18", "resnet50", "vgg16", "vgg16_bn"} <= set(disabled) and not enabled & set(disabled)
    assert all("no offline weights" in why for why in disabled.values()), disabled
    assert re.search(r'<option value="mobilenet_v2" selected>', select)
    for name in disabled:                                   # the library refuses each without weights ...
        with pytest.raises(ValueError, match="no offline weights"):
            load_model(name)
    for name in sorted(enabled - {"clip:world-RN"}):       # ... and loads each offered one with real weights (the world
        lm = load_model(name)                               # CLIP too, left out here: its text head takes ~15 s to build)
        assert lm.weights_source.startswith(("offline:", "file:")), (name, lm.weights_source)
    client.post("/api/model", json={"name": "resnet50"})
    job = wait_job(client)
    assert job["status"] == "failed" and "resnet50 has no offline weights" in job["error"], job
    assert client.get("/api/state").json()["model"]["name"] == "mobilenet_v2"
    opened = Studio("resnet18", weights=str(tmp_path / "resnet18.pth"), workdir=str(tmp_path))   # --model resnet18 --weights PATH
    try:
        choices = {c["name"]: c for c in opened.model_choices()}
        assert choices["resnet18"]["offline"] and choices["resnet18"]["checkpoint"] and not choices["resnet50"]["offline"]
    finally:
        opened.close()


# ------------------------------------------------------------------------------------------------
# the effect panel: the exemplars are not held-out images


def test_effect_panel_leaves_out_the_exemplars_by_identity(client, tmp_path):
    """The exemplar is left out of the held-out set by its pixels, whatever route it came by: chelsea uploaded as a
    file of another name is found among the shipped photos and, renamed again, in a folder; n counts what was measured.
    An edit that does not name its exemplars (made elsewhere) leaves out the session's painted exemplars."""
    from modeledit.eval.photos import load_photos
    from modeledit.images import save_image

    studio = client.app.state.studio
    ticked = {i: im.exemplar for i, im in studio.images.items()}
    for i in ticked:                                              # earlier tests' images: not exemplars here
        client.post(f"/api/images/{i}/exemplar", json={"on": False})
    cat = load_photos(["chelsea"])["chelsea"]
    image_id = client.post("/api/images/upload", files={"file": ("my-cat.png", png_bytes(cat), "image/png")}).json()["added"][0]
    mask = np.zeros((224, 224), np.uint8)
    mask[40:200, 30:190] = 255
    client.post(f"/api/images/{image_id}/mask", content=png_bytes(mask), headers={"content-type": "image/png"})
    client.post("/api/style", json={"name": "brick"})
    client.post("/api/execute", json={"site": "features.17", "stats": "none"})
    assert wait_job(client)["status"] == "done"
    folder = tmp_path / "held-out"
    save_image(cat, folder / "renamed-cat.png")
    save_image(load_photos(["coffee"])["coffee"], folder / "coffee.png")
    try:
        client.post("/api/effect", json={"set": "photos"})
        assert wait_job(client)["status"] == "done"
        eff = client.get("/api/state").json()["effect"]
        assert (eff["n"], eff["n_set"], eff["n_excluded"], eff["excluded"]) == (10, 11, 1, ["my-cat.png"]) and eff["exemplars_from"] == "edit"
        client.post("/api/effect", json={"set": str(folder)})
        assert wait_job(client)["status"] == "done"
        eff = client.get("/api/state").json()["effect"]
        assert (eff["n"], eff["n_set"], eff["excluded"]) == (1, 2, ["my-cat.png"])
        studio.edit.metrics.pop("exemplar_images")             # as an edit made by `modeledit edit` and loaded here
        client.post("/api/effect", json={"set": "photos"})
        assert wait_job(client)["status"] == "done"
        eff = client.get("/api/state").json()["effect"]
        assert (eff["n"], eff["excluded"], eff["exemplars_from"]) == (10, ["my-cat.png"], "session")
        save_image(cat, folder / "coffee.png")                  # a held-out set of nothing but the exemplar: one message
        (folder / "renamed-cat.png").unlink()
        client.post("/api/effect", json={"set": str(folder)})
        job = wait_job(client)
        assert job["status"] == "failed" and "every image" in job["error"], job
    finally:
        client.post("/api/revert")
        client.post(f"/api/images/{image_id}/remove")
        for i, on in ticked.items():
            client.post(f"/api/images/{i}/exemplar", json={"on": on})
        client.post("/api/style", json={"name": "snow"})


# ------------------------------------------------------------------------------------------------
# on a GPU (benchmarks/gpu_check.sh runs `pytest -m cuda`; skipped here without one)


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU visible (run benchmarks/gpu_check.sh on a GPU machine)")
def test_session_on_a_gpu_and_its_edit_on_the_cpu(tmp_path):
    """``--device cuda``: the model, every forward and the stylizer on the GPU; the saved edit loads and applies on
    the CPU with the page's top-1 on the exemplar's counterfactual."""
    from modeledit import load_model
    from modeledit.device import Runtime
    from modeledit.edit import Edit

    st = Studio("world_vgg", runtime=Runtime.resolve("cuda"), workdir=str(tmp_path))
    try:
        st.load_model("world_vgg")
        assert {p.device.type for p in st.lm.model.parameters()} == {"cuda"}
        assert st.model_info()["runtime"]["device"].startswith("cuda")
        seen, handle = forward_recorder(st.lm.model)
        try:
            with st.within():                                  # as a job's thread runs
                ims = st.add_world("test", 1)
                st.segment(ims[0].id, "oracle (world scenes)", "sand")
                st.counterfactual(ims[0].id)
                st.execute("-1", stats="world:val:16")
                eff = st.effect_panel("world:test:12")
        finally:
            handle.remove()
        assert seen and {d for d, _ in seen} == {"cuda"}, seen
        assert eff["n"] == 11 and eff["excluded"] == [ims[0].name]
        names = st.save_edit("gpu")
        page_top1 = st.get_image(ims[0].id).preds["counterfactual"]["edited"][0]["label"]
        cf = st.get_image(ims[0].id).counterfactual.cpu()
        lm = load_model("world_vgg", device="cpu")
        edit = Edit.load(st.workdir / "edits" / Path(names["json"]).stem, model=lm.model)
        with edit.applied(lm.model):
            assert lm.topk(cf[None], 1)[0][0]["label"] == page_top1
    finally:
        st.close()
