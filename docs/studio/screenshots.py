"""Make the README's studio screenshots (docs/studio/*.png) in Debian's headless chromium.

Run from the repository root: ``.venv/bin/python docs/studio/screenshots.py``. The MobileNetV2 views
(paint, edited, bad upload) come from the browser tests in tests/test_studio.py, which save
screenshots when MODELEDIT_STUDIO_SHOTS names a folder; the world views (a rewrite's effect, sensitivity) are driven here on the embedded
default (world_vgg). Each picture is downscaled and palette-quantized to stay small.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "studio"
sys.path.insert(0, str(ROOT))


def shrink(src: Path, dst: Path, width: int = 1100) -> None:
    from PIL import Image

    im = Image.open(src).convert("RGB")
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def sensitivity_view(folder: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    import tests.test_studio as t

    port = t.free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("modeledit")), "studio", "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        t.wait_loaded(proc, url)
        driver = next(t.browser.__wrapped__())
        driver.get(url + "/")
        t.idle(driver)
        driver.find_element(By.ID, "world-add").click()
        t.idle(driver)
        # the embedded default's path: the oracle's sand on scene 0, restyled with snow, rewritten, its effect
        driver.find_element(By.CSS_SELECTOR, "#thumbs li img").click()
        Select(driver.find_element(By.ID, "segmenter-select")).select_by_value("oracle (world scenes)")
        driver.find_element(By.ID, "segment-concept").send_keys("sand")
        driver.find_element(By.ID, "segment").click()
        t.idle(driver)
        driver.find_element(By.ID, "cf-button").click()
        t.idle(driver)
        for field, value in (("stats", "world:val:300"), ("effect-set", "world:test:300"), ("effect-concept", "sand")):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "execute").click()
        t.idle(driver, 600)
        driver.find_element(By.ID, "effect").click()
        t.idle(driver, 600)
        assert not driver.find_element(By.ID, "message").text, driver.find_element(By.ID, "message").text
        driver.save_screenshot(str(folder / "world-effect.png"))
        driver.find_element(By.ID, "sens-set").clear()
        driver.find_element(By.ID, "sens-set").send_keys("world:test:300")
        driver.find_element(By.ID, "sens-run").click()
        t.idle(driver, 600)
        assert not driver.find_element(By.ID, "message").text, driver.find_element(By.ID, "message").text
        cells = driver.find_elements(By.CSS_SELECTOR, "#heat td.cell")
        best = max(cells, key=lambda td: float((td.text.split(" ")[0] or "0").replace("–", "0")))
        best.click()
        driver.find_element(By.CSS_SELECTOR, "#cell-out table button").click()
        t.idle(driver)
        driver.execute_script("document.getElementById('sensitivity-panel').scrollIntoView()")
        time.sleep(0.5)
        driver.save_screenshot(str(folder / "sensitivity.png"))
        driver.quit()
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "MODELEDIT_STUDIO_SHOTS": str(folder)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_studio.py", "-k", "browser"], cwd=ROOT, env=env, check=True)
        sensitivity_view(folder)
        for name in ("paint", "edited", "bad-upload", "world-effect", "sensitivity"):
            png = folder / f"{name}.png"
            shrink(png, OUT / png.name)
            print(OUT / png.name, (OUT / png.name).stat().st_size)


if __name__ == "__main__":
    main()
