"""A self-contained HTML report built from harness outputs.

A section is ``kind``, ``title``, ``text`` (a short reading), ``numbers`` (flat dict of key figures),
``tables`` (list of ``{title, columns, rows}``), ``figures`` and ``images`` (paths relative to its folder,
with captions). The demo writes each section as a ``summary.json``; every other harness output is read
from its own manifest and tables by the reader of the harness that wrote it (the manifest's ``harness``;
:data:`READERS`: ``sensitivity`` from
``table.csv``, ``bench`` from ``summary.csv`` and ``summary_budget_*.csv``, ``typographic`` and ``snow``
from ``summary.csv``; each with its ``figures/`` and ``examples.png``). :func:`build_report` collects
every section under a results folder (the demo's output, one harness's ``--out``, or a tree of them
such as the committed ``results/world``), copies the pictures next to the page, and writes
``index.html`` (no network needed to view it) and ``results.json`` with every number shown.

A section may also carry ``finding`` (one sentence stating the result in words; the section opens with
it), and a table ``percent`` (columns holding fractions) and ``intervals`` (``{column: [low column,
high column]}``). Numbers are formatted for people (:func:`format_value`): fractions (accuracies,
errors corrected, presence, locality) as percentages with one decimal, differences of fractions (drops)
in percentage points with one decimal, keys already in points (``(pp)``) likewise, never ``-0.0``; a
method with no setting within the clean-accuracy budget shows :data:`NO_SETTING` instead of zeros.

Example:
    >>> build_report("report/")            # -> report/index.html, report/results.json
"""
from __future__ import annotations

import html
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

from modeledit.atomic import write_json_atomic, write_text_atomic
from modeledit.provenance import package_versions

log = logging.getLogger(__name__)

ORDER = {"sensitivity": 0, "bench": 1, "typographic": 2, "snow": 3, "photos": 4}

#: what a table shows for a method none of whose settings stays within the budget
NO_SETTING = "no setting within budget"
#: ... and for a method whose settings within the budget correct nothing on validation
NO_GAIN_SHOWN = "no change (none helps)"

#: column/key words marking a fraction in [0, 1] (shown as a percentage)
FRACTION_WORDS = ("corrected", "acc", "presence", "success", "locality", "share", "confidence", "spurious", "rule",
                  "fraction", "unchanged", "back to", "prob")
#: words marking a difference of fractions (shown in percentage points)
DIFFERENCE_WORDS = ("drop", "gain", "change")


def _kind(key: str) -> str:
    """"pp" (already in points), "diff" (a difference of fractions), "frac" (a fraction) or "" by the key's words."""
    k = key.lower()
    if "(pp)" in k or k.endswith("_pp"):
        return "pp"
    if any(w in k for w in DIFFERENCE_WORDS):
        return "diff"
    if any(w in k for w in FRACTION_WORDS):
        return "frac"
    return ""


def format_value(v: Any, key: str = "", kind: str | None = None) -> str:
    """``v`` for people: a fraction as ``73.1%``, a difference of fractions as ``-1.2 pp``, other floats
    with three significant decimals at most; never ``-0.0``; NaN as ``-``. ``kind`` overrides the guess
    from ``key`` ("frac", "diff", "pp", "").

    Example:
        >>> format_value(0.7312, "test_other_corrected"), format_value(-0.00001, "clean_drop"), format_value(-0.0)
        ('73.1%', '0.0 pp', '0')
    """
    import math
    import numbers

    if isinstance(v, bool) or type(v).__name__ == "bool_" or not isinstance(v, numbers.Real):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "-"
    kind = _kind(key) if kind is None else kind
    if kind in ("frac", "diff", "pp"):
        x = 100 * float(v) if kind != "pp" else float(v)
        text = f"{x:.1f}"
        text = "0.0" if text in ("-0.0", "0.0") else text
        return f"{text}%" if kind == "frac" else f"{text} pp"
    text = f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def budget_rows(rows: list[Mapping[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Summary rows for a table: a method that makes no change shows why (:data:`NO_SETTING` when no
    setting was within the budget) in its measured columns, not zeros."""
    from modeledit.eval.protocol import NONE_QUALIFIES

    out = []
    for r in rows:
        r = dict(r)
        if r.get("changed") is False or r.get("changed") == 0:
            none = r.get("choice") == NONE_QUALIFIES or str(r.get("setting", "")).startswith(NONE_QUALIFIES)
            for c in columns:
                if c.startswith("post_") or c.endswith(("corrected", "drop", "locality", "_rule")):
                    r[c] = NO_SETTING if none else NO_GAIN_SHOWN
        out.append(r)
    return out


def display_table(table: Any, columns: list[str]) -> str:
    """A table as aligned text for the terminal, its numbers formatted as in the report."""
    rows = table.to_dict("records") if hasattr(table, "to_dict") else list(table)
    cells = [[str(c) for c in columns]] + [[format_value(r.get(c, ""), c) for c in columns] for r in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells)


def write_summary(out_dir: str | os.PathLike, kind: str, title: str, numbers: Mapping[str, Any], text: str = "",
                  tables: list[Mapping[str, Any]] | None = None, figures: list[tuple[str, str]] | None = None,
                  images: list[tuple[str, str]] | None = None, config: Mapping[str, Any] | None = None,
                  finding: str = "", order: int = 0) -> Path:
    """Write a harness's ``summary.json`` (figures/images: ``(relative path, caption)``; ``finding``: the
    result in one sentence, which opens the report's section; ``order``: place among sections of the same
    kind, lower first, then by folder name)."""
    path = Path(out_dir) / "summary.json"
    write_json_atomic(path, {
        "kind": kind, "title": title, "finding": finding, "order": int(order), "text": text, "numbers": dict(numbers), "tables": list(tables or []),
        "figures": [list(f) for f in figures or []], "images": [list(i) for i in images or []],
        "config": dict(config or {}), "versions": package_versions(),
    })
    return path


def _fmt(v: Any, key: str = "", kind: str | None = None) -> str:
    """A value as the page shows it (HTML-escaped :func:`format_value`)."""
    return html.escape(format_value(v, key, kind))


def _cell(r: Mapping[str, Any], c: str, t: Mapping[str, Any]) -> dict[str, Any]:
    """One table cell as the template shows it: its text and, where the table has one, its interval."""
    kind = "frac" if c in t.get("percent", ()) else None
    v = r.get(c, "")
    cell: dict[str, Any] = {"text": format_value(v, c, kind), "interval": None}
    cell["pieces"] = break_points(cell["text"])
    lo_hi = t.get("intervals", {}).get(c)
    if lo_hi and isinstance(v, (int, float)) and all(isinstance(r.get(k), (int, float)) for k in lo_hi):
        lo, hi = (format_value(r[k], c, kind) for k in lo_hi)
        if lo != "-":
            cell["interval"] = (lo, hi)
    return cell


#: where a cell's text may wrap besides spaces: after ``_ / , ; = ) ] }``, and after ``.``, ``:`` or ``-`` that follow a
#: letter (``finetune_global`` and ``visual.layer4.0`` wrap at their parts, never mid-word; numbers never); a run
#: longer than LONGEST_PIECE without one wraps every LONGEST_PIECE characters
BREAK_AFTER = r"(?<=[_/,;=)\]}])|(?<=[A-Za-z][.:-])"
LONGEST_PIECE = 24


def break_points(text: str) -> list[str]:
    """``text`` cut into the pieces a line may wrap between (the template joins them with ``<wbr>``).

    Example:
        >>> break_points("visual.layer4.0 at 0.25")
        ['visual.', 'layer4.0 at 0.25']
    """
    import re

    out: list[str] = []
    for part in re.split(BREAK_AFTER, text):
        if not part:
            continue
        pieces = [tok[i:i + LONGEST_PIECE] for tok in re.split(r"(\s+)", part) if tok
                  for i in range(0, len(tok), LONGEST_PIECE)]
        merged = [pieces[0]]
        for tok in pieces[1:]:      # spaces are break points already: keep words and spaces in one piece
            if tok.isspace() or merged[-1].isspace() or merged[-1].endswith(" "):
                merged[-1] += tok
            else:
                merged.append(tok)
        if out and merged[0][:1].isspace():   # a break point followed by a space: the space is enough
            out[-1] += merged.pop(0)
        out += merged
    return out or [text]


def _table(t: Mapping[str, Any]) -> dict[str, Any]:
    """A section's table as the template takes it (column names readable, every cell formatted)."""
    return {"title": t.get("title", ""), "intervals": bool(t.get("intervals")),
            "columns": [str(c).replace("_", " ") for c in t["columns"]],
            "rows": [[_cell(r, c, t) for c in t["columns"]] for r in t["rows"]]}


def _is_number(text: str) -> bool:
    """Whether a formatted value is a number (a big tile) rather than words such as NO_SETTING (a small one)."""
    return bool(text) and (text[0].isdigit() or (text[0] == "-" and text[1:2].isdigit()))


def _template(name: str) -> Any:
    """A page template from ``eval/templates`` (Jinja2, HTML-escaped)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
                      autoescape=select_autoescape(["html"]), keep_trailing_newline=False)
    return env.get_template(name)


CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
p.finding{font-size:1.1em;font-weight:600;margin:.4em 0 .8em}
.tw{max-width:100%}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em;max-width:100%;table-layout:auto}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;overflow-wrap:anywhere;word-break:break-word;max-width:22em}
th{background:#f3f3f3}.num{display:inline-block;margin:0 1.2em .6em 0;max-width:30em;vertical-align:top}.num b{font-size:1.3em;display:block}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:100%}figure img{max-width:100%;border:1px solid #ddd}
figure.wide img{width:100%}
figcaption{font-size:.85em;color:#555}.meta{font-size:.8em;color:#777;overflow-wrap:anywhere}
.num.txt b{font-size:1em;font-weight:600;color:#666}
#summary{background:#f6f7f9;border:1px solid #ddd;padding:.3em 1em;margin:.5em 0 1em}#summary h2{margin:.4em 0;border:0;font-size:1.2em}
#summary ol{margin:.2em 0 .5em;padding-left:1.4em}#summary li{margin:.25em 0}"""

#: on load: how many pictures loaded, the widest element beyond the window (overflow), and the data-keys
#: of key numbers not visible (zero size or outside the window) - the browser test reads them from the DOM
CHECK_JS = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
var b=document.body,W=document.documentElement.clientWidth,over=[];
var all=b.getElementsByTagName('*');for(var j=0;j<all.length;j++){var r=all[j].getBoundingClientRect();
if(r.right>W+1&&r.width>0)over.push(all[j].tagName.toLowerCase());}
var hidden=[],nums=document.querySelectorAll('[data-key]');for(var k=0;k<nums.length;k++){var q=nums[k].getBoundingClientRect();
if(q.width<1||q.height<1||q.right>W+1||q.left<0)hidden.push(nums[k].getAttribute('data-key'));}
b.setAttribute('data-images-loaded',ok+'/'+im.length);b.setAttribute('data-window-width',W);
b.setAttribute('data-scroll-width',document.documentElement.scrollWidth);
b.setAttribute('data-overflow',over.length+':'+over.slice(0,5).join(','));
var sm=document.getElementById('summary');if(sm)b.setAttribute('data-summary-bottom',Math.round(sm.getBoundingClientRect().bottom));
b.setAttribute('data-window-height',window.innerHeight);b.setAttribute('data-hidden-numbers',hidden.length+':'+hidden.slice(0,5).join('|'));});"""


# ---------------------------------------------------------------------------------------------
# reading each harness's own output (manifest.json + its tables)


def _records(df: Any, columns: list[str]) -> list[dict[str, Any]]:
    cols = [c for c in columns if c in df.columns]
    return [{c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in cols} for _, r in df[cols].iterrows()]


def _figures(folder: Path, first: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    figs = sorted((folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []
    figs.sort(key=lambda p: (p.stem not in first, first.index(p.stem) if p.stem in first else 0, p.stem))
    out = [(str(p.relative_to(folder)), p.stem.replace("_", " ")) for p in figs]
    if (folder / "examples.png").is_file():
        out.append(("examples.png", "examples: exemplar and evaluation images"))
    return out


def _no_change_text(df: Any) -> Any:
    """Rows whose method made no change say so (older tables left the site and setting blank)."""
    df = df.copy()
    if "changed" in df.columns:
        unchanged = ~df["changed"].astype(bool)
        for c in ("site_name", "setting"):
            if c in df.columns:
                df[c] = df[c].astype(object)
                blank = unchanged & (df[c].isna() | (df[c].astype(str).isin(["", "-"])))
                df.loc[blank, c] = "-" if c == "site_name" else "no setting qualifies: no change"
    return df


def _read_sensitivity(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd

    t = pd.read_csv(folder / "table.csv")
    cfg = manifest.get("config", {})
    present = t[(t["presence"] >= 0.2) & t["drop"].notna()]
    pivot = present.groupby(["concept", "style"])["drop"].mean().unstack("style")
    rows = [{"concept": c, **{s: float(pivot.loc[c, s]) for s in pivot.columns}} for c in pivot.index]
    worst = t.dropna(subset=["drop"]).sort_values("drop", ascending=False).head(12)
    numbers = {"concept-style pairs": int(t.groupby(["concept", "style"]).ngroups), "classes": int(t["class_name"].nunique()),
               "largest per-class accuracy drop": float(worst["drop"].iloc[0]) if len(worst) else float("nan")}
    top = worst.iloc[0] if len(worst) else None
    finding = (f"Restyling only the {top['concept']} ({top['style']}) costs '{top['class_name']}' the most accuracy: "
               f"{format_value(float(top['drop']), 'drop')}." if top is not None else "No class loses accuracy in this run.")
    return {"kind": "sensitivity", "title": f"Concept sensitivity of {cfg.get('model', '?')} ({folder.name})", "finding": finding,
            "text": "Mean per-class accuracy drop when only the concept is restyled, over the classes whose images contain "
                    "the concept in at least 20% of cases; then the largest single drops with 95% bootstrap intervals.",
            "numbers": numbers,
            "tables": [{"title": "mean drop (concept x style)", "columns": ["concept", *map(str, pivot.columns)], "rows": rows},
                       {"title": "largest drops", "columns": ["concept", "style", "class_name", "presence", "acc_clean",
                                                              "acc_transformed", "drop", "drop_low", "drop_high"],
                        "rows": _records(worst, ["concept", "style", "class_name", "presence", "acc_clean", "acc_transformed", "drop", "drop_low", "drop_high"])}],
            "figures": _figures(folder, ("heatmap",)), "images": [], "config": cfg}


BENCH_COLUMNS = ["concept", "style", "n_exemplars", "method", "target_class", "test_target_corrected", "test_other_corrected",
                 "heldout_target_corrected", "heldout_other_corrected", "clean_drop", "site_name", "setting"]


def _read_bench(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd

    cfg = manifest.get("config", {})
    budget = cfg.get("protocol", {}).get("max_clean_drop", float("nan"))
    s = _no_change_text(pd.read_csv(folder / "summary.csv"))
    numbers = {}
    if "test_other_corrected" in s.columns:
        means = s.groupby("method")["test_other_corrected"].mean()
        numbers = {f"{m}: errors corrected, other classes (test)": float(v) for m, v in means.items()}
    tables = [{"title": f"chosen settings at a {100 * budget:.2f} pp clean-accuracy budget", "columns": BENCH_COLUMNS,
               "rows": budget_rows(_records(s, BENCH_COLUMNS + ["changed", "choice"]), BENCH_COLUMNS)}]
    finding = "No method corrects errors on other classes within the budget."
    if numbers:
        m, v = max(numbers.items(), key=lambda kv: kv[1] if kv[1] == kv[1] else -1)
        if v > 0:
            finding = f"{m.split(':')[0]} corrects the most errors on other classes on average ({format_value(v, 'corrected')})."
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected", "clean_drop"]
    for f in sorted(folder.glob("summary_budget_*.csv"), key=lambda p: float(p.stem.rsplit("_", 1)[1])):
        b = pd.read_csv(f)
        present = [c for c in cols if c in b.columns]
        g = b.groupby("method").agg(**{c: (c, "mean") for c in present}, **({"changed": ("changed", "sum")} if "changed" in b.columns else {})).reset_index()
        tables.append({"title": f"budget {100 * float(f.stem.rsplit('_', 1)[1]):.2f} pp: mean over pairs ('changed' = pairs where a "
                                "setting qualified)", "columns": ["method", *cols, "changed"], "rows": _records(g, ["method", *cols, "changed"])})
    return {"kind": "bench", "title": f"Editing vs fine-tuning, {cfg.get('model', '?')} ({folder.name})", "finding": finding,
            "text": "Per pair and method, the setting with the most validation errors corrected within the clean-accuracy budget, "
                    "and its test numbers; 'no change' is always a candidate (0 errors corrected).",
            "numbers": numbers, "tables": tables, "figures": _figures(folder, ("methods", "budget")), "images": [], "config": cfg}


def _read_oneshot(kind: str, title: str, text: str) -> Callable[[Path, Mapping[str, Any]], dict[str, Any]]:
    def read(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
        import pandas as pd

        cfg = manifest.get("config", {})
        s = _no_change_text(pd.read_csv(folder / "summary.csv"))
        groups = [c[4:] for c in s.columns if c.startswith("pre_")]
        cols = ["method", *[f"{p}_{g}" for g in groups for p in ("pre", "post")], "clean_drop", "site_name", "setting"]
        numbers = {}
        for _, r in s.iterrows():
            for g in groups[:3]:
                numbers[f"{r['method']}: {g.replace('_', ' ')} (before -> after)"] = (
                    f"{format_value(r[f'pre_{g}'], kind='frac')} -> {format_value(r[f'post_{g}'], kind='frac')}")
        finding = ""
        if groups and len(s):
            b = s.loc[(s[f"post_{groups[0]}"] - s[f"pre_{groups[0]}"]).idxmax()]
            finding = (f"{b['method']} moves {groups[0].replace('_', ' ')} the most: {format_value(b[f'pre_{groups[0]}'], kind='frac')} -> "
                       f"{format_value(b[f'post_{groups[0]}'], kind='frac')} (setting chosen on validation within the budget).")
        return {"kind": kind, "title": f"{title}, {cfg.get('model', '?')} ({folder.name})", "text": text, "numbers": numbers,
                "finding": finding,
                "tables": [{"title": "per method, the setting chosen on validation within the budget", "columns": cols,
                            "rows": budget_rows(_records(s, cols + ["changed"]), cols), "percent": [c for c in cols if c.startswith(("pre_", "post_"))]}],
                "figures": _figures(folder), "images": [], "config": cfg}

    return read


#: harness -> (the table its folder holds once finished, the reader of that folder; None: the folder is
#: described by its own ``summary.json``, or holds no section of the report)
READERS: dict[str, tuple[str, Callable[[Path, Mapping[str, Any]], dict[str, Any]] | None]] = {
    "sensitivity": ("table.csv", _read_sensitivity),
    "bench": ("summary.csv", _read_bench),
    "typographic": ("summary.csv", _read_oneshot(
        "typographic", "Typographic attack and its one-exemplar fix",
        "Accuracy under attack, attack success and clean accuracy before and after each method's chosen setting.")),
    "snow": ("summary.csv", _read_oneshot(
        "snow", "Snow adaptation from one synthetic exemplar",
        "Accuracy on snowy vehicles (or photos), clean accuracy, and how often snowy images go to the exemplar's class.")),
    "photos": ("summary.json", None),
    "clip-eval": ("eval.json", None),
    "rules": ("summary.csv", None),       # the many-rules study (eval/rules.py): read in results/world/rules/README.md
}


def _legacy_harness(folder: Path, manifest: Mapping[str, Any]) -> str | None:
    """The harness of a folder written before manifests named it, from the layouts those folders have (the
    committed ones included); None for any other layout. The one place that reads config keys to tell."""
    cfg = manifest.get("config", {})
    if "concepts" in cfg and "styles" in cfg:
        return "sensitivity"
    if "protocol" in cfg and "pairs" in cfg:
        return "bench"
    if "attack_class" in cfg:
        return "typographic"
    if "exemplar_class" in cfg and "mode" in cfg:
        return "snow"
    if "photos" in cfg and "crops" in cfg:
        return "photos"
    if "attack_fonts" in cfg and (folder / "eval.json").is_file():
        return "clip-eval"
    return None


def harness_of(folder: Path, manifest: Mapping[str, Any]) -> str:
    """Which harness wrote ``folder``: its manifest's ``harness`` (or, for older folders, :func:`_legacy_harness`);
    ValueError for a folder no known harness wrote (it is never read as another harness's)."""
    name = manifest.get("harness") or _legacy_harness(folder, manifest)
    if name not in READERS:
        raise ValueError(f"{folder}/manifest.json was not written by a harness the report knows ({name or 'no harness named'}; "
                         f"known: {', '.join(READERS)}); move that folder out of the results tree or rerun its harness")
    return name


def collect_sections(root: Path) -> list[dict[str, Any]]:
    """Every section under ``root``: ``summary.json`` files, and harness folders (``manifest.json``) read by
    :data:`READERS`; a harness folder under (or at) a ``summary.json`` is that summary's own data."""
    sections = []
    described = []
    for f in sorted(root.rglob("summary.json")):
        s = json.loads(f.read_text())
        s["folder"], s["_dir"] = str(f.parent.relative_to(root)), f.parent
        sections.append(s)
        described.append(f.parent.resolve())
    for m in sorted(root.rglob("manifest.json")):
        folder = m.parent
        if any(folder.resolve().is_relative_to(d) for d in described):
            continue
        try:
            manifest = json.loads(m.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{m} is not valid JSON ({exc}); is the results folder damaged?") from None
        finished, read = READERS[harness_of(folder, manifest)]
        if read is not None and (folder / finished).is_file():
            s = read(folder, manifest)
            s["folder"], s["_dir"] = str(folder.relative_to(root)), folder
            sections.append(s)
        else:
            log.info("%s: a results folder without finished tables (run the harness to the end); skipped", folder)
    return sections


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, title: str = "modeledit report") -> Path:
    """Every harness output under ``results_dir`` as ``out_dir/index.html`` (default: results_dir)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {str(root)!r} does not exist; pass a folder written by a harness's --out")
    summaries = collect_sections(root)
    if not summaries:
        raise ValueError(f"no harness results under {str(root)!r} (no summary.json, and no sensitivity/bench/typographic/snow "
                         "folder with its manifest.json and tables); run a harness with --out there first")
    out = Path(out_dir) if out_dir else root
    summaries.sort(key=lambda s: (ORDER.get(s["kind"], 99), int(s.get("order", 0)), s["folder"]))
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    sections = []
    for k, s in enumerate(summaries):
        pictures = []
        for rel, caption in s.get("figures", []) + s.get("images", []):
            src = s["_dir"] / rel
            if not src.is_file():
                raise FileNotFoundError(f"{src} is named in {s['folder']}/summary.json but missing")
            name = f"{k}_{Path(rel).name}"
            if src.resolve() != (assets / name).resolve():
                shutil.copyfile(src, assets / name)
            pictures.append((name, caption))
        sections.append({"title": s["title"], "finding": s.get("finding"), "text": s.get("text"),
                         "numbers": [(n, format_value(v, n), _is_number(format_value(v, n))) for n, v in s["numbers"].items()],
                         "tables": [_table(t) for t in s.get("tables", [])], "pictures": pictures})
    versions = package_versions()
    page = _template("report.html").render(title=title, css=CSS, check_js=CHECK_JS, sections=sections,
                                           versions=sorted((str(k), str(v)) for k, v in versions.items()))
    write_text_atomic(out / "index.html", page)
    write_json_atomic(out / "results.json", {
        "title": title, "versions": versions,
        "sections": [{k: v for k, v in s.items() if k != "_dir"} for s in summaries],
    })
    return out / "index.html"
