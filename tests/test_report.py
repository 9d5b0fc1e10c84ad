"""The report page opens in a real headless browser with every picture loaded and its numbers shown."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from modeledit.eval.report import build_report, write_summary

from browser import chromium, dump_dom


def _fake_harness(folder, kind, value):
    folder.mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)).save(folder / "fig.png")
    write_summary(folder, kind, f"{kind} results", {"errors corrected (target)": value},
                  tables=[{"title": "t", "columns": ["a", "b"], "rows": [{"a": 1, "b": value}]}],
                  figures=[("fig.png", "a figure")])


def test_build_report_collects_summaries(tmp_path):
    _fake_harness(tmp_path / "sens", "sensitivity", 0.25)
    _fake_harness(tmp_path / "bench", "bench", 0.731)
    page = build_report(tmp_path)
    text = page.read_text()
    assert text.index("sensitivity results") < text.index("bench results")
    data = json.loads((tmp_path / "results.json").read_text())
    assert [s["numbers"]["errors corrected (target)"] for s in data["sections"]] == [0.25, 0.731]


def test_report_missing_folder_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no harness results"):
        build_report(tmp_path / "empty")


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_report_loads_in_headless_chromium(tmp_path):
    _fake_harness(tmp_path / "sens", "sensitivity", 0.25)
    _fake_harness(tmp_path / "bench", "bench", 0.731)
    dom = dump_dom(build_report(tmp_path))
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert m and m.group(1) == m.group(2) == "2", m
    assert "0.731" in dom


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_quick_demo_report_in_headless_chromium(tmp_path, capsys):
    """The demo's own page: every figure and example image loads, and its key numbers are on the page."""
    from modeledit.cli import main

    out = tmp_path / "report"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [s["kind"] for s in results["sections"]] == ["sensitivity", "bench", "typographic", "photos"]
    dom = dump_dom(out / "index.html")
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 7, m
    # explanation maps (captum) before and after each method, loaded like every other picture
    bench = next(s for s in results["sections"] if s["kind"] == "bench")
    shown = {f for f, _ in bench["figures"] if f.startswith("explain_")}
    assert {"explain_input_gradient.png", "explain_integrated_gradients.png"} <= shown
    for name in shown:
        assert re.search(rf'<img[^>]+src="[^"]*{re.escape(name)}"', dom), name
    assert "where the model looks" in dom
    share = next(t for t in bench["tables"] if t["title"].startswith("explanations inside the"))
    assert share["rows"][0]["model"] == "before" and share["rows"][0]["input_gradient inside / before"] == 1.0
    from modeledit.eval.report import _fmt

    for section in results["sections"]:
        for value in section["numbers"].values():
            assert _fmt(value) in dom


def test_report_from_each_harness_own_output(tmp_path):
    """`modeledit report` reads sensitivity, bench, typographic and snow folders (no summary.json): the
    committed results/world builds a page with one section per harness folder."""
    import json
    from pathlib import Path

    from modeledit.cli import main

    root = Path(__file__).resolve().parent.parent / "results" / "world"
    assert main(["report", str(root), "--out", str(tmp_path / "r")]) == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    kinds = {s["folder"]: s["kind"] for s in results["sections"]}
    assert kinds == {"sensitivity": "sensitivity", "bench": "bench", "bench_exemplars": "bench", "typographic": "typographic",
                     "snow": "snow"}
    page = (tmp_path / "r" / "index.html").read_text()
    assert "no setting qualifies: no change" in page  # a method that made no change says so, not a blank site
    bench = next(s for s in results["sections"] if s["folder"] == "bench")
    assert any("2.00 pp" in t["title"] for t in bench["tables"])  # the re-selected budgets (summary_budget_0.02.csv)
    for s in results["sections"]:
        assert s["tables"] and s["figures"], s["folder"]
        for rel, _ in s["figures"]:
            assert (root / s["folder"] / rel).is_file()
    # one harness folder on its own works too
    assert main(["report", str(root / "snow"), "--out", str(tmp_path / "s")]) == 0
