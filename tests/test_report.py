"""The report page opens in a real headless browser with every picture loaded and its numbers shown."""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from PIL import Image

from modeledit.eval.report import build_report, write_summary

from browser import WINDOW, chromium, dump_dom, screenshot


def _body(dom):
    """The check results the page's script wrote on <body> (eval/report.py CHECK_JS)."""
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))


def _fake_harness(folder, kind, value):
    folder.mkdir(parents=True)
    Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)).save(folder / "fig.png")
    write_summary(folder, kind, f"{kind} results", {"errors corrected (target)": value}, n={"errors corrected (target)": 40},
                  tables=[{"title": "t", "columns": ["a", "b"], "rows": [{"a": 1, "b": value}], "percent": ["b"], "n": {"b": 40}}],
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
    assert "73.1%" in dom


def test_number_formats():
    from modeledit.eval.report import NO_SETTING, budget_rows, format_value

    assert format_value(0.7312, "test_other_corrected") == "73.1%"
    assert format_value(-0.00001, "clean_drop") == "0.0 pp" and format_value(0.0123, "drop") == "1.2 pp"
    assert format_value(-1.04, "clean accuracy change (pp)") == "-1.0 pp"
    assert format_value(-0.0) == "0" and format_value(-0.0004) == "0" and format_value(np.float64(-0.0), "locality") == "0.0%"
    assert format_value(np.int64(3), "units_changed") == "3" and format_value(float("nan"), "acc_clean") == "-"
    assert format_value(0.25, "presence", kind="frac") == "25.0%" and format_value(12.3456) == "12.346"
    rows = budget_rows([{"method": "edit", "changed": False, "choice": "no setting qualifies", "test_other_corrected": 0.0},
                        {"method": "ft", "changed": True, "choice": "setting", "test_other_corrected": 0.5}],
                       ["method", "test_other_corrected"])
    assert rows[0]["test_other_corrected"] == NO_SETTING and rows[1]["test_other_corrected"] == 0.5


def _wide_harness(folder):
    """A section with every hard case: a wide table with long settings, intervals, a big figure, many numbers."""
    folder.mkdir(parents=True)
    Image.fromarray((np.random.default_rng(1).random((300, 2600, 3)) * 255).astype(np.uint8)).save(folder / "wide.png")
    cols = [f"a_long_column_name_{k}_corrected" for k in range(14)] + ["setting"]
    rows = [{**{c: 0.1 * k for c in cols[:-1]}, "a_long_column_name_0_corrected": -0.0, "a_long_column_name_0_low": -0.1,
             "a_long_column_name_0_high": 0.2,
             "setting": json.dumps({"lr": 0.001, "steps": 500, "alpha": 0.25, "note": "x" * 120})} for k in range(4)]
    for r in rows:
        r.update(setting_long="finetune_global.visual.layer4.0.conv2.weight_and_more", n_errors=17)
    cols.append("setting_long")
    numbers = {f"method {k}: errors corrected on other photos in held-out style images": 0.1 * k for k in range(12)}
    numbers["clean accuracy change (pp)"] = -0.0
    write_summary(folder, "photos", "wide results", numbers, finding="One sentence that states the finding.",
                  n={k: 30 for k in numbers},
                  tables=[{"title": "wide", "columns": cols, "rows": rows, "n": {c: "n_errors" for c in cols},
                           "intervals": {"a_long_column_name_0_corrected": ["a_long_column_name_0_low", "a_long_column_name_0_high"]}}],
                  figures=[("wide.png", "a wide figure")])


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_report_fits_a_1300px_window(tmp_path):
    """Nothing overflows horizontally at 1300 px, every picture loads, every key number is visible; the
    screenshot shows a page (not blank)."""
    _fake_harness(tmp_path / "sens", "sensitivity", 0.25)
    _wide_harness(tmp_path / "photos")
    page = build_report(tmp_path)
    dom = dump_dom(page)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs["window-width"] == str(WINDOW[0]) or int(attrs["window-width"]) >= WINDOW[0] - 20, attrs
    assert attrs["overflow"].startswith("0:"), attrs
    assert int(attrs["scroll-width"]) <= int(attrs["window-width"]), attrs
    assert attrs["hidden-numbers"].startswith("0:"), attrs
    loaded, total = attrs["images-loaded"].split("/")
    assert loaded == total == "2"
    assert "-0.0" not in re.sub(r"<[^>]+>", " ", dom).replace("-0.1", "")   # no negative zero anywhere on the page
    assert "One sentence that states the finding." in dom and "[-10.0, 20.0]" in dom
    # the wide table scrolls in its own box; no cell's text is cut inside a word; every estimate shows its n
    assert int(attrs["scrolling-tables"]) >= 1, attrs
    assert attrs["midword"].startswith("0:"), attrs
    assert int(attrs["estimates"]) > 0 and attrs["estimates-without-n"].startswith("0:"), attrs
    assert attrs["bare-numbers"].startswith("0:"), attrs
    assert "n\xa0=\xa017" in dom.replace("&nbsp;", "\xa0") and "finetune_<wbr>global.<wbr>visual.<wbr>" in dom
    # the summary (each section's title and finding) opens the page, within the first screen
    assert 0 < int(attrs["summary-bottom"]) <= int(attrs["window-height"]), attrs
    summary = re.search(r'<nav id="summary">(.*?)</nav>', dom, re.S).group(1)
    assert "One sentence that states the finding." in summary and "wide results" in summary
    assert "{" not in dom[dom.index('class="meta"'):]          # versions read as words, not a JSON dump
    shot = screenshot(page, tmp_path / "shot.png")
    im = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert im.shape[1] == WINDOW[0] and im.std() > 5        # a rendered page, not a blank one


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_quick_demo_report_in_headless_chromium(tmp_path, capsys):
    """The demo's own page: every figure and example image loads, and its key numbers are on the page."""
    from modeledit.cli import main

    out = tmp_path / "report"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [s["kind"] for s in results["sections"]] == ["sensitivity", "bench", "typographic", "typographic", "photos"]
    assert [s["folder"] for s in results["sections"] if s["kind"] == "typographic"] == ["typographic_clip", "typographic"]
    assert "world CLIP" in next(s for s in results["sections"] if s["folder"] == "typographic_clip")["title"]
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
    from modeledit.eval.report import NO_SETTING, _fmt

    for section in results["sections"]:
        for key, value in section["numbers"].items():
            if value == NO_SETTING:     # listed once in words, not a tile each
                quiet = re.findall(r"No setting within the budget \(no change made\): ([^<]*)", dom)
                assert any(key.split(":")[0] in q.split(", ") or key.split(":")[0] + "." in q.split(", ") for q in quiet), key
            else:
                assert _fmt(value, key) in dom
    # at a 1300 px window nothing overflows and every key number is visible; each section states its finding
    body = _body(dom)
    print("demo page height", body["page-height"], "px; estimates", body["estimates"])
    assert body["overflow"].startswith("0:") and body["hidden-numbers"].startswith("0:"), body
    # the summary answers what was found, what the edit did and at what cost within the first 900 px
    assert 0 < int(body["summary-bottom"]) <= 900, body
    summary = html.unescape(re.sub(r"<[^>]+>", "", re.search(r'<nav id="summary">(.*?)</nav>', dom, re.S).group(1)))
    assert all(s["finding"] in summary for s in results["sections"])
    assert "clean accuracy" in summary and "n = " in summary
    # no cell cut inside a word; every percentage or pp shown with its n
    assert body["midword"].startswith("0:"), body
    assert int(body["estimates"]) > 20 and body["estimates-without-n"].startswith("0:"), body
    assert body["bare-numbers"].startswith("0:"), body
    # section 1's headline names the class and concept its table and bar chart show first
    sens = results["sections"][0]
    first = sens["tables"][0]["rows"][0]
    assert f"costs '{first['class_name']}'" in sens["finding"] and f"only the {first['concept']} " in sens["finding"]
    assert f"concept_{first['concept']}.png" in [f for f, _ in sens["figures"]]
    # the typographic examples: labelled thumbnails at least 120 px with the predictions before and after
    for section in results["sections"]:
        if section["kind"] == "typographic":
            assert [f for f, _ in section["figures"]] == ["examples_predictions.png"]
            with Image.open(out / section["folder"] / "examples_predictions.png") as im:
                assert im.height >= 240 and im.width / 6 >= 120, im.size
    assert all(s.get("finding") for s in results["sections"])
    assert dom.count("class=\"finding\"") == len(results["sections"])
    assert "-0.0" not in re.sub(r"<[^>]+>", " ", dom)
    photos = next(s for s in results["sections"] if s["kind"] == "photos")
    assert {"masks.png", "grid.png"} <= {f for f, _ in photos["figures"]}
    assert photos["tables"][0]["title"].startswith("errors corrected on other photos")


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
    want = {"sensitivity": "sensitivity", "bench": "bench", "bench_exemplars": "bench", "typographic": "typographic",
            "snow": "snow", "typographic_baselines": "typographic", "snow_baselines": "snow"}
    assert {k: kinds.get(k) for k in want} == want
    assert set(kinds.values()) <= {"sensitivity", "bench", "typographic", "snow"}   # every section is a known harness
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


def test_report_reads_the_harness_its_manifest_names_and_refuses_an_unknown_folder(tmp_path):
    """The manifest's ``harness`` picks the reader (a snow folder whose config looks like nothing is still snow);
    a folder no known harness wrote is refused in one line, never read as some harness's output."""
    import pandas as pd

    snow = tmp_path / "r" / "snow"
    snow.mkdir(parents=True)
    (snow / "manifest.json").write_text(json.dumps({"harness": "snow", "config": {"model": "world_vgg"}}))
    pd.DataFrame([{"method": "edit", "changed": True, "pre_snowy": 0.5, "post_snowy": 0.75, "clean_drop": 0.0,
                   "site_name": "features.11", "setting": "{}"}]).to_csv(snow / "summary.csv", index=False)
    build_report(tmp_path / "r")
    sections = json.loads((tmp_path / "r" / "results.json").read_text())["sections"]
    assert [s["kind"] for s in sections] == ["snow"]
    odd = tmp_path / "r" / "odd"
    odd.mkdir()
    (odd / "manifest.json").write_text(json.dumps({"config": {"lr": 0.1}}))
    (odd / "summary.csv").write_text("method\nedit\n")
    with pytest.raises(ValueError, match=r"odd/manifest.json was not written by a harness the report knows"):
        build_report(tmp_path / "r")
    (odd / "manifest.json").write_text(json.dumps({"harness": "nonesuch", "config": {}}))
    with pytest.raises(ValueError, match="nonesuch"):
        build_report(tmp_path / "r")


def test_table_cells_wrap_at_name_parts_not_mid_word():
    """Names wrap at their parts (``finetune_|global``, ``visual.|layer4.0``), numbers and words never, and a run
    with no break point is never cut (a wide table scrolls in its own box instead)."""
    from modeledit.eval.report import break_points

    assert break_points("finetune_global") == ["finetune_", "global"]
    assert break_points("visual.layer4.0") == ["visual.", "layer4.0"]
    assert break_points("73.1%") == ["73.1%"] and break_points("-0.5 pp [-1.0, 0.2]") == ["-0.5 pp [-1.0, 0.2]"]
    assert break_points("no setting qualifies: no change") == ["no setting qualifies: no change"]
    assert break_points("x" * 60) == ["x" * 60]
    for text in ("finetune_global", "visual.layer4.0 at 0.25", "x" * 60, '{"lr": 0.001, "steps": 500}'):
        assert "".join(break_points(text)) == text


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_page_checks_catch_mid_word_breaks_and_estimates_without_n(tmp_path):
    """The page's own checks fail where they should: the old cell CSS (overflow-wrap:anywhere in a capped
    cell width) cuts identifiers mid-word, and an estimate written without its n is counted."""
    _wide_harness(tmp_path / "photos")
    page = build_report(tmp_path)
    good = _body(dump_dom(page))
    assert good["midword"].startswith("0:") and good["estimates-without-n"].startswith("0:"), good
    old_css = "td,th{overflow-wrap:anywhere;word-break:break-word;max-width:22em}.tw{overflow-x:visible}</style>"
    page.write_text(page.read_text().replace("</style>", old_css, 1))
    cut = _body(dump_dom(page))
    assert int(cut["midword"].split(":")[0]) > 0, cut
    folder = tmp_path / "no_n"
    folder.mkdir()
    write_summary(folder, "photos", "no n", {"errors corrected": 0.5},
                  tables=[{"title": "t", "columns": ["method", "test_corrected"], "rows": [{"method": "edit", "test_corrected": 0.25}]}])
    bare = _body(dump_dom(build_report(folder)))
    assert bare["estimates-without-n"].startswith("2:"), bare


def test_columns_say_which_way_is_better_and_views_read_as_what_happened():
    """Headers carry unit and direction; the photo study's fallback mask reads as what happened, in old results too."""
    from modeledit.eval.report import SHOWN_AS, column_label

    assert column_label("drop") == "accuracy drop (pp; higher = more sensitive)"
    assert column_label("clean_drop") == "clean accuracy drop (pp; higher = worse)"
    assert column_label("test_other_corrected").endswith("(% of errors; higher = better)")
    assert column_label("post_attack_success").endswith("(%; lower = better)")
    assert column_label("locality") == "clean views changed (%; higher = worse)"
    assert column_label("site_name") == "site name"
    from modeledit.eval.photos import ELLIPSE_LABEL

    assert SHOWN_AS["ellipse (GrabCut failed)"] == ELLIPSE_LABEL


@pytest.mark.skipif(chromium() is None, reason="Debian chromium not installed (make test installs it)")
def test_committed_results_pages_show_every_estimate_with_its_n(tmp_path):
    """The committed real-photo study and the world harness folders (written before summaries carried n) render
    with every estimate's n, no mid-word cuts, the fallback mask in words, budgets explained."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "results"
    for name, src in [("photos", root / "photos"), ("world", root / "world" / "bench")]:
        page = build_report(src, tmp_path / name)
        dom = dump_dom(page)
        body = _body(dom)
        print(name, "page height", body["page-height"], "px")
        assert body["overflow"].startswith("0:") and body["midword"].startswith("0:"), (name, body)
        assert int(body["estimates"]) > 0 and body["estimates-without-n"].startswith("0:"), (name, body)
        assert body["bare-numbers"].startswith("0:"), (name, body)
        assert "class=\"budget\"" in dom, name
        if name == "photos":
            assert "GrabCut failed" not in dom and "ellipse mask (GrabCut found no clear object)" in dom
            assert "clean views" in dom    # the photos' budget counts views, and says why
