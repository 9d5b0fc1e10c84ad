"""An HTML report built from harness outputs: ``index.html`` with its pictures in ``assets/`` (no network needed).

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
method with no setting within the clean-accuracy budget shows :data:`NO_SETTING` instead of zeros (and its
key numbers are listed once in words, not as tiles).

Every estimate (a percentage or points) is shown with its n: a section's ``n`` (``{number key: n}``) and a
table's ``n`` (``{column: n or the column holding it}``); a table's ``points`` are columns of differences of
fractions, its ``values`` columns of single measurements (one image's confidence) that need none. Sections
written before they carried n get theirs from their own tables (:data:`FILL_N`, the harness readers).
Column headers say unit and which way is better (:data:`COLUMN_NOTES`); each section with a budget says
what it is (:func:`budget_note`); long tables and the attribution grids open folded. The page's script
records its own checks on ``<body>`` (:data:`CHECK_JS`) for the browser tests.

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

from modeledit.atomic import finished_files, write_json_atomic, write_text_atomic
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
                  finding: str = "", order: int = 0, n: Mapping[str, int] | None = None, budget: str = "") -> Path:
    """Write a harness's ``summary.json`` (figures/images: ``(relative path, caption)``; ``finding``: the
    result in one sentence, which opens the report's section; ``order``: place among sections of the same
    kind, lower first, then by folder name; ``n``: the sample size of each estimate among ``numbers``, shown
    beside it; ``budget``: one sentence on the budget the section's settings were chosen within, where
    :func:`budget_note` cannot say it from the config)."""
    path = Path(out_dir) / "summary.json"
    write_json_atomic(path, {
        "kind": kind, "title": title, "finding": finding, "order": int(order), "text": text, "numbers": dict(numbers),
        "n": {str(k): int(v) for k, v in (n or {}).items()}, "budget": budget, "tables": list(tables or []),
        "figures": [list(f) for f in figures or []], "images": [list(i) for i in images or []],
        "config": dict(config or {}), "versions": package_versions(),
    })
    return path


def _fmt(v: Any, key: str = "", kind: str | None = None) -> str:
    """A value as the page shows it (HTML-escaped :func:`format_value`)."""
    return html.escape(format_value(v, key, kind))


def _n_of(spec: Any, r: Mapping[str, Any]) -> int | None:
    """The sample size an ``n`` spec names for row ``r``: a number, or a column of the row holding it."""
    import numbers

    v = r.get(spec) if isinstance(spec, str) else spec
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v:
        return int(v)
    return None


def _is_estimate(text: str) -> bool:
    """Whether a formatted value is an estimate from a sample (a percentage or points, alone or as
    ``before -> after``): the page shows it with its n."""
    return _is_number(text) and text.endswith(("%", " pp"))


def _cell(r: Mapping[str, Any], c: str, t: Mapping[str, Any]) -> dict[str, Any]:
    """One table cell as the template shows it (``t["percent"]``: columns of fractions, ``t["points"]``: columns of
    differences of fractions, else the kind its name says): its text, its interval where the table has one, and its n
    (``t["n"][c]``: a number or the column holding it) where the value is an estimate; a column listed in
    ``t["values"]`` holds single measurements (one image's confidence), not estimates."""
    kind = "frac" if c in t.get("percent", ()) else "diff" if c in t.get("points", ()) else None
    v = r.get(c, "")
    text = format_value(v, c, kind)
    text = SHOWN_AS.get(text, text)
    value = c in t.get("values", ())
    cell: dict[str, Any] = {"text": text, "interval": None, "n": None, "value": value,
                            "estimate": not value and _is_estimate(text)}
    cell["pieces"] = break_points(text)
    lo_hi = t.get("intervals", {}).get(c)
    if lo_hi and isinstance(v, (int, float)) and all(isinstance(r.get(k), (int, float)) for k in lo_hi):
        lo, hi = (format_value(r[k], c, kind).removesuffix(" pp").removesuffix("%") for k in lo_hi)   # the value's unit
        if lo != "-":
            cell["interval"] = (lo, hi)
    if cell["estimate"] and c in t.get("n", {}):
        cell["n"] = _n_of(t["n"][c], r)
    return cell


#: where a cell's text may wrap besides spaces: after ``_``, and after a ``.`` that follows a letter
#: (``finetune_global`` and ``visual.layer4.0`` wrap at their parts; numbers and words never). Nothing
#: else is cut: a table wider than the page scrolls in its own box.
BREAK_AFTER = r"(?<=_)|(?<=[A-Za-z]\.)"


def break_points(text: str) -> list[str]:
    """``text`` cut into the pieces a line may wrap between besides its spaces (the template joins them
    with ``<wbr>``).

    Example:
        >>> break_points("visual.layer4.0 at 0.25")
        ['visual.', 'layer4.0 at 0.25']
    """
    import re

    out: list[str] = []
    for part in re.split(BREAK_AFTER, text):
        if not part:
            continue
        if out and part[:1].isspace():   # a break point followed by a space: the space is enough
            out[-1] += part
        else:
            out.append(part)
    return out or [text]


#: how the page names a column: its words, unit and which way is good, so no reader has to guess whether
#: high is bad (the first rule whose key ends the column's name applies; ``{}``: the words)
COLUMN_NOTES: list[tuple[str, str]] = [
    ("clean_drop", "clean accuracy drop (pp; higher = worse)"),
    ("drop", "accuracy drop (pp; higher = more sensitive)"),
    ("locality", "clean views changed (%; higher = worse)"),
    ("spurious_rule", "spurious 'text -> exemplar class' (rise, %; higher = worse)"),
    ("attack_success", "{} (%; lower = better)"),
    ("corrected", "{} (% of errors; higher = better)"),
    ("acc_clean", "clean accuracy (%)"),
    ("acc_transformed", "accuracy restyled (%)"),
    ("_clean", "{} accuracy (%; higher = better)"),
    ("acc", "{} (%; higher = better)"),
    ("presence", "presence (% of the class's images)"),
    ("inside / before", "{} (ratio; 1 = unchanged)"),
    ("mask_share", "mask share (% of pixels)"),
    ("share", "{} (% of the map)"),
    ("confidence", "confidence (% probability)"),
]


def column_label(c: str) -> str:
    """A column's header: its words, unit and direction (:data:`COLUMN_NOTES`).

    Example:
        >>> column_label("clean_drop"), column_label("test_other_corrected")
        ('clean accuracy drop (pp; higher = worse)', 'test other corrected (% of errors; higher = better)')
    """
    c = str(c)
    words = c.replace("_", " ")
    for key, note in COLUMN_NOTES:
        if c.endswith(key):
            return note.format(words)
    return words


def _split_note(label: str) -> tuple[str, str]:
    """A header as (words, "(unit; direction)"), the note shown small under the words."""
    if label.endswith(")") and " (" in label:
        head, note = label.split(" (", 1)
        return head, f"({note}"
    return label, ""


#: a value as the page words it, where the words on disk read wrong (results written before the wording
#: changed keep theirs in their CSV and JSON files)
SHOWN_AS = {"ellipse (GrabCut failed)": "ellipse mask (GrabCut found no clear object)", "grabcut": "GrabCut mask"}

#: a table with more rows than this opens folded (its title shows; a click shows the rows)
FOLD_ROWS = 10
#: tables that open folded whatever their length: secondary readings (the photos' upper bound, not the protocol)
FOLD_TABLES = ("upper bound",)


def _table(t: Mapping[str, Any]) -> dict[str, Any]:
    """A section's table as the template takes it (column names with unit and direction, every cell
    formatted, long tables folded)."""
    folded = len(t["rows"]) > FOLD_ROWS or str(t.get("title", "")).startswith(FOLD_TABLES)
    return {"title": t.get("title", ""), "intervals": bool(t.get("intervals")), "folded": folded,
            "columns": [_split_note(column_label(c)) for c in t["columns"]],
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


CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.2em auto;padding:0 1em;color:#222;line-height:1.35}
h1{font-size:1.5em;margin:.2em 0 .4em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1em;margin:.8em 0 .3em}
p.finding{font-size:1.08em;font-weight:600;margin:.4em 0 .6em}p.budget{font-size:.9em;background:#fdf8e4;border-left:3px solid #e0c050;padding:.3em .6em}
p.quiet,p.note{font-size:.85em;color:#666;margin:.2em 0 .6em}
.tw{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.3em 0 .8em;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600;max-width:14em}th small{font-weight:normal;color:#555}
.est small{color:#666;font-weight:normal;font-size:.85em}
.tiles{margin:.3em 0}.num{display:inline-block;margin:0 1.4em .5em 0;max-width:30em;vertical-align:top;font-size:.9em;color:#444}
.num b{font-size:1.35em;display:block;color:#222}.num b small{font-size:.6em}
figure{display:inline-block;margin:.4em;vertical-align:top;max-width:100%}figure img{max-width:min(100%,760px);height:auto;border:1px solid #ddd}figure.strip img{max-width:100%}
figcaption{font-size:.85em;color:#555;max-width:40em}.meta{font-size:.8em;color:#777}
details{margin:.4em 0}details>summary{cursor:pointer;font-weight:600;font-size:.95em;color:#345}
#summary{background:#f6f7f9;border:1px solid #ddd;padding:.2em 1em;margin:.4em 0 1em}#summary h2{margin:.3em 0;border:0;font-size:1.15em}
#summary ol{margin:.2em 0 .3em;padding-left:1.4em}#summary li{margin:.2em 0}"""

#: on load, the checks the browser test reads from <body>'s data- attributes: pictures loaded; the elements
#: wider than the window (outside the tables' own scroll boxes); the data-keys of key numbers not visible;
#: the summary's bottom and the page's height; with every <details> opened for the measurement, the
#: table cells and tiles whose text a line break cuts inside a word (anywhere but a space, a hyphen, a
#: <wbr> or an element's edge), estimates (span.est) without their n, and cells or tiles showing a
#: percentage or pp outside an estimate
CHECK_JS = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
var b=document.body,W=document.documentElement.clientWidth,over=[];
b.setAttribute('data-page-height',document.documentElement.scrollHeight);
var all=b.getElementsByTagName('*');for(var j=0;j<all.length;j++){if(all[j].closest('.tw')&&!all[j].classList.contains('tw'))continue;
var r=all[j].getBoundingClientRect();if(r.right>W+1&&r.width>0)over.push(all[j].tagName.toLowerCase());}
var hidden=[],nums=document.querySelectorAll('[data-key]');for(var k=0;k<nums.length;k++){var q=nums[k].getBoundingClientRect();
if(q.width<1||q.height<1||q.right>W+1||q.left<0)hidden.push(nums[k].getAttribute('data-key'));}
b.setAttribute('data-images-loaded',ok+'/'+im.length);b.setAttribute('data-window-width',W);
b.setAttribute('data-scroll-width',document.documentElement.scrollWidth);
b.setAttribute('data-overflow',over.length+':'+over.slice(0,5).join(','));
var sm=document.getElementById('summary');if(sm)b.setAttribute('data-summary-bottom',Math.round(sm.getBoundingClientRect().bottom));
b.setAttribute('data-window-height',window.innerHeight);b.setAttribute('data-hidden-numbers',hidden.length+':'+hidden.slice(0,5).join('|'));
var det=document.querySelectorAll('details:not([open])');for(var d=0;d<det.length;d++)det[d].open=true;
var cut=[],cells=document.querySelectorAll('td,th,.num');for(var c=0;c<cells.length;c++){
var tw=document.createTreeWalker(cells[c],NodeFilter.SHOW_TEXT),node;while((node=tw.nextNode())){var t=node.data,top=null;
for(var x=0;x<t.length;x++){var rg=document.createRange();rg.setStart(node,x);rg.setEnd(node,x+1);var rs=rg.getClientRects();
if(!rs.length||/\\s/.test(t[x]))continue;var y=rs[0].top;
if(top!==null&&Math.abs(y-top)>2&&x>0&&!/[\\s-]/.test(t[x-1]))cut.push(t.slice(Math.max(0,x-12),x)+'|'+t.slice(x,x+12));top=y;}}}
var noN=[],est=document.querySelectorAll('.est');for(var e=0;e<est.length;e++){if(!/n\\s*=\\s*\\d/.test(est[e].textContent))noN.push(est[e].textContent);}
var bare=[],shown=document.querySelectorAll('td,.num b');for(var u=0;u<shown.length;u++){var el=shown[u];
if(/\\d(\\.\\d+)?\\s?(%|pp)/.test(el.textContent)&&!el.querySelector('.est')&&!el.closest('.est')&&!el.classList.contains('val'))bare.push(el.textContent);}
for(var d2=0;d2<det.length;d2++)det[d2].open=false;
b.setAttribute('data-midword',cut.length+':'+cut.slice(0,5).join(' ~ '));
b.setAttribute('data-estimates',est.length);b.setAttribute('data-estimates-without-n',noN.length+':'+noN.slice(0,5).join(' ~ '));
b.setAttribute('data-bare-numbers',bare.length+':'+bare.slice(0,5).join(' ~ '));
var tws=document.querySelectorAll('.tw'),sc=0;for(var w=0;w<tws.length;w++){if(tws[w].scrollWidth>tws[w].clientWidth+1)sc++;}
b.setAttribute('data-scrolling-tables',sc);});"""


# ---------------------------------------------------------------------------------------------
# reading each harness's own output (manifest.json + its tables)


def _records(df: Any, columns: list[str]) -> list[dict[str, Any]]:
    cols = [c for c in columns if c in df.columns]
    return [{c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in cols} for _, r in df[cols].iterrows()]


def _figures(folder: Path, first: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    figs = finished_files(folder / "figures", "*.png") if (folder / "figures").is_dir() else []
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


PAIR_KEYS = ["concept", "style", "n_exemplars", "seed"]
#: the sample size behind each bench column: the errors before the edit (its denominator), or the clean images
BENCH_N = {"test_target_corrected": "test_target_n_pre", "test_other_corrected": "test_other_n_pre",
           "heldout_target_corrected": "heldout_target_n_pre", "heldout_other_corrected": "heldout_other_n_pre",
           "clean_drop": "clean_n"}


def with_pair_n(summary: Any, cells: Any) -> Any:
    """A bench summary with every n its columns need (:data:`BENCH_N`), those it lacks taken from the pair's cells
    (the counts before any edit are the same in every cell of a pair)."""
    need = [c for c in BENCH_N.values() if c not in summary.columns and c in cells.columns]
    keys = [k for k in PAIR_KEYS if k in summary.columns and k in cells.columns]
    if not need or not keys:
        return summary
    return summary.merge(cells.groupby(keys, as_index=False)[need].first(), on=keys, how="left")


def clean_images(config: Mapping[str, Any]) -> int | None:
    """How many clean images a world section measured clean accuracy on (its ``clean`` dataset spec's count)."""
    spec = str(config.get("clean", ""))
    tail = spec.rsplit(":", 1)[-1]
    return int(tail) if spec.startswith("world") and tail.isdigit() else None


def budget_note(kind: str, config: Mapping[str, Any], clean_views: int | None = None) -> str:
    """One sentence on the budget a section's settings were chosen within: what it is, and why the photo
    sections count changed views where the world sections count accuracy points. "" where no budget applies."""
    if kind == "photos":
        b = config.get("max_clean_drop")
        if b is None:
            return ""
        views = (f"the {clean_views} clean views ({int(b * clean_views + 1e-9)} may change)" if clean_views else "the clean views")
        return (f"A setting counts only if it changes the label of at most {100 * b:.0f}% of {views}. "
                "The photos have no labels of their own (the model's predictions are the labels), so this budget counts "
                "changed views, not accuracy points as the world sections do, and a few views make it coarse.")
    b = config.get("max_clean_drop", config.get("protocol", {}).get("max_clean_drop"))
    if kind not in ("bench", "typographic", "snow") or b is None:
        return ""
    n = clean_images(config)
    images = f" on the {n} clean images ({int(b * n + 1e-9)} images)" if n else ""
    return (f"A setting counts only if it loses at most {100 * b:.2f} pp of clean accuracy{images}; the paper's 0.25 pp "
            "is below what a set this size resolves. The real-photo sections use a budget in changed views instead "
            "(they have no labelled clean set).")


def _photos_n(s: dict[str, Any]) -> dict[str, Any]:
    """n for a photos section written before summaries carried it (the committed results/photos): the
    errors before each method's edit, the clean views (from the folder's summary.csv), the tiles' n from
    the methods table; the views table's confidence and mask share are single measurements."""
    import pandas as pd

    s = dict(s)
    units = s["_dir"] / "summary.csv"
    clean = {}
    if units.is_file():
        u = pd.read_csv(units)
        if "clean_n" in u.columns:
            clean = {(int(k[0]), str(k[1])): int(v) for k, v in u.groupby(["n_exemplars", "method"])["clean_n"].sum().items()}
    tables, n = [], dict(s.get("n") or {})
    for t in s.get("tables", []):
        t = dict(t)
        if "test_corrected" in t["columns"]:
            t["rows"] = [{**r, "clean_views": clean.get((int(r.get("n_exemplars", 0)), str(r.get("method"))))} for r in t["rows"]]
            t.setdefault("n", {"test_corrected": "test_errors_before", "heldout_corrected": "heldout_errors_before",
                               "locality": "clean_views"})
            for r in t["rows"]:
                key = f"{r.get('method')} ({r.get('n_exemplars')} ex.): errors corrected, other photos"
                if key in s.get("numbers", {}) and isinstance(r.get("test_errors_before"), (int, float)):
                    n.setdefault(key, int(r["test_errors_before"]))
        if "confidence" in t["columns"]:
            t.setdefault("values", ["confidence", "mask_share"])
        tables.append(t)
    s["tables"], s["n"] = tables, n
    if not s.get("budget"):
        per_unit = None
        if units.is_file() and "clean_n" in u.columns and len(u):
            per_unit = int(u["clean_n"].iloc[0])
        s["budget"] = budget_note("photos", s.get("config", {}), per_unit)
    return s


#: per section kind, what fills in the n (and budget) of a section written without them
FILL_N: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"photos": _photos_n}


def _read_sensitivity(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd

    from modeledit.eval.plots import ranked_drops

    t = pd.read_csv(folder / "table.csv")
    cfg = manifest.get("config", {})
    present = t[(t["presence"] >= 0.2) & t["drop"].notna()]
    pivot = present.groupby(["concept", "style"])["drop"].mean().unstack("style")
    count = present.groupby(["concept", "style"])["drop"].count().unstack("style")
    styles = [str(c) for c in pivot.columns]
    rows = [{"concept": c, **{s: float(pivot.loc[c, s]) for s in pivot.columns},
             **{f"{s} n": int(count.loc[c, s]) if count.loc[c, s] == count.loc[c, s] else None for s in pivot.columns}} for c in pivot.index]
    worst = ranked_drops(t).head(12)
    top = worst.iloc[0] if len(worst) else None
    numbers = {"concept-style pairs": int(t.groupby(["concept", "style"]).ngroups), "classes": int(t["class_name"].nunique()),
               "largest per-class accuracy drop": float(top["drop"]) if top is not None else float("nan")}
    n_col = "n_with_concept" if "n_with_concept" in t.columns else None
    finding = (f"Restyling only the {top['concept']} ({top['style']}) costs '{top['class_name']}' the most accuracy: "
               f"{format_value(float(top['drop']), 'drop')}" + (f", n = {int(top[n_col])} images." if n_col else ".")
               if top is not None else "No class loses accuracy in this run.")
    per_class_n = {c: n_col for c in ("acc_clean", "acc_transformed", "drop")} if n_col else {}
    return {"kind": "sensitivity", "title": f"Concept sensitivity of {cfg.get('model', '?')} ({folder.name})", "finding": finding,
            "text": "Mean per-class accuracy drop when only the concept is restyled, over the classes whose images contain "
                    "the concept in at least 20% of cases (n = those classes); then the largest single drops with 95% bootstrap "
                    "intervals (n = the class's images with the concept).",
            "numbers": numbers, "n": {"largest per-class accuracy drop": int(top[n_col])} if n_col and top is not None else {},
            "tables": [{"title": "mean accuracy drop (concept x style)", "columns": ["concept", *styles], "rows": rows,
                        "points": styles, "n": {s: f"{s} n" for s in styles}},
                       {"title": "largest drops", "columns": ["concept", "style", "class_name", "presence", "acc_clean",
                                                              "acc_transformed", "drop"],
                        "rows": _records(worst, ["concept", "style", "class_name", "presence", "acc_clean", "acc_transformed", "drop",
                                                 "drop_low", "drop_high", "n_class_images", "n_with_concept"]),
                        "intervals": {"drop": ["drop_low", "drop_high"]},
                        "n": {**per_class_n, **({"presence": "n_class_images"} if "n_class_images" in t.columns else {})}}],
            "figures": _figures(folder, ("heatmap",)), "images": [], "config": cfg}


BENCH_COLUMNS = ["concept", "style", "n_exemplars", "method", "target_class", "test_target_corrected", "test_other_corrected",
                 "heldout_target_corrected", "heldout_other_corrected", "clean_drop", "site_name", "setting"]


def _read_bench(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd

    cfg = manifest.get("config", {})
    budget = cfg.get("protocol", {}).get("max_clean_drop", float("nan"))
    s = _no_change_text(pd.read_csv(folder / "summary.csv"))
    cells = pd.read_csv(folder / "cells.csv") if (folder / "cells.csv").is_file() else pd.DataFrame()
    s = with_pair_n(s, cells)
    numbers, n = {}, {}
    if "test_other_corrected" in s.columns:
        means = s.groupby("method")["test_other_corrected"].mean()
        pairs = s.groupby("method")["test_other_corrected"].count()
        numbers = {f"{m}: errors corrected, other classes (test, mean over pairs)": float(v) for m, v in means.items()}
        n = {f"{m}: errors corrected, other classes (test, mean over pairs)": int(pairs[m]) for m in means.index}
    have_n = {c: k for c, k in BENCH_N.items() if k in s.columns}
    tables = [{"title": f"chosen settings at a {100 * budget:.2f} pp clean-accuracy budget", "columns": BENCH_COLUMNS,
               "rows": budget_rows(_records(s, BENCH_COLUMNS + ["changed", "choice", *have_n.values()]), BENCH_COLUMNS),
               "n": have_n}]
    finding = "No method corrects errors on other classes within the budget."
    if numbers:
        m, v = max(numbers.items(), key=lambda kv: kv[1] if kv[1] == kv[1] else -1)
        if v > 0:
            finding = (f"{m.split(':')[0]} corrects the most errors on other classes on average ({format_value(v, 'corrected')}, "
                       f"n = {n[m]} pairs).")
    cols = ["test_target_corrected", "test_other_corrected", "heldout_target_corrected", "heldout_other_corrected", "clean_drop"]
    for f in sorted(folder.glob("summary_budget_*.csv"), key=lambda p: float(p.stem.rsplit("_", 1)[1])):
        b = pd.read_csv(f)
        present = [c for c in cols if c in b.columns]
        g = b.groupby("method").agg(**{c: (c, "mean") for c in present}, pairs=("method", "size"),
                                    **({"changed": ("changed", "sum")} if "changed" in b.columns else {})).reset_index()
        tables.append({"title": f"budget {100 * float(f.stem.rsplit('_', 1)[1]):.2f} pp: mean over pairs (n = pairs; 'changed' = pairs "
                                "where a setting qualified)", "columns": ["method", *cols, "changed"],
                       "rows": _records(g, ["method", *cols, "changed", "pairs"]), "n": {c: "pairs" for c in cols}})
    return {"kind": "bench", "title": f"Editing vs fine-tuning, {cfg.get('model', '?')} ({folder.name})", "finding": finding,
            "text": "Per pair and method, the setting with the most validation errors corrected within the clean-accuracy budget, "
                    "and its test numbers; 'no change' is always a candidate (0 errors corrected). n: the errors before the edit "
                    "(errors corrected), the clean images (clean drop), the pairs (means over pairs).",
            "numbers": numbers, "n": n, "tables": tables, "figures": _figures(folder, ("methods", "budget")), "images": [], "config": cfg}


def _group_n(folder: Path) -> dict[str, int]:
    """The images each group of a one-shot study was measured on (``n_<group>`` of its cells, the same in every cell)."""
    import pandas as pd

    if not (folder / "cells.csv").is_file():
        return {}
    row = pd.read_csv(folder / "cells.csv", nrows=1)
    return {c[2:]: int(row[c].iloc[0]) for c in row.columns if c.startswith("n_") and row[c].iloc[0] == row[c].iloc[0]}


def _read_oneshot(kind: str, title: str, text: str) -> Callable[[Path, Mapping[str, Any]], dict[str, Any]]:
    def read(folder: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
        import pandas as pd

        cfg = manifest.get("config", {})
        s = _no_change_text(pd.read_csv(folder / "summary.csv"))
        groups = [c[4:] for c in s.columns if c.startswith("pre_")]
        cols = ["method", *[f"{p}_{g}" for g in groups for p in ("pre", "post")], "clean_drop", "site_name", "setting"]
        group_n = _group_n(folder)
        if "clean" not in group_n and clean_images(cfg):   # cells written before they carried n: the clean set's size
            group_n["clean"] = clean_images(cfg)
        numbers, n = {}, {}
        for _, r in s.iterrows():
            for g in groups[:3]:
                key = f"{r['method']}: {g.replace('_', ' ')} (before -> after)"
                numbers[key] = f"{format_value(r[f'pre_{g}'], kind='frac')} -> {format_value(r[f'post_{g}'], kind='frac')}"
                if g in group_n:
                    n[key] = group_n[g]
        finding = ""
        if groups and len(s):
            b = s.loc[(s[f"post_{groups[0]}"] - s[f"pre_{groups[0]}"]).idxmax()]
            n0 = f", n = {group_n[groups[0]]} images" if groups[0] in group_n else ""
            finding = (f"{b['method']} moves {groups[0].replace('_', ' ')} the most: {format_value(b[f'pre_{groups[0]}'], kind='frac')} -> "
                       f"{format_value(b[f'post_{groups[0]}'], kind='frac')}{n0} (setting chosen on validation within the budget).")
        col_n = {f"{p}_{g}": group_n[g] for g in groups if g in group_n for p in ("pre", "post")}
        if "clean" in group_n:
            col_n["clean_drop"] = group_n["clean"]
        return {"kind": kind, "title": f"{title}, {cfg.get('model', '?')} ({folder.name})", "text": text, "numbers": numbers,
                "finding": finding, "n": n,
                "tables": [{"title": "per method, the setting chosen on validation within the budget", "columns": cols,
                            "rows": budget_rows(_records(s, cols + ["changed"]), cols), "n": col_n,
                            "percent": [c for c in cols if c.startswith(("pre_", "post_"))]}],
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


#: figures that open folded (one click shows them), by the start of their file name, under one summary line per
#: group: the attribution grids (three screens when open) and the photos' masks (reference for the views table)
FOLD_FIGURES = {"explain_": "where the model looks: attribution maps before and with each method's edit",
                "masks": "the 'object' mask of every photo"}
#: a picture shorter than this (a strip of small thumbnails) is shown enlarged to it, in whole multiples
MIN_SHOWN_HEIGHT = 120


def _shown_size(path: Path) -> tuple[tuple[int, int] | None, bool]:
    """How to show a picture: the size for a small one (enlarged in whole multiples up to :data:`MIN_SHOWN_HEIGHT`
    px high, else None), and whether it is a strip (at least twice as wide as high), shown up to the page's
    width; other pictures are shown at most 760 px wide, so a tall grid takes less than a screen per row."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    strip = w >= 2 * h
    if h >= MIN_SHOWN_HEIGHT or h == 0:
        return None, strip
    k = -(-MIN_SHOWN_HEIGHT // h)
    return (w * k, h * k), strip


def _tiles(s: Mapping[str, Any]) -> tuple[list[tuple[str, str, bool, int | None]], list[str]]:
    """A section's key numbers as tiles ``(key, text, is an estimate, n)``; the methods whose number reads
    :data:`NO_SETTING` are listed once in words instead of a tile each."""
    tiles, none = [], []
    for key, v in s["numbers"].items():
        text = format_value(v, key)
        if text == NO_SETTING:
            name = key.split(":")[0]
            if name not in none:
                none.append(name)
            continue
        estimate = _is_estimate(text)
        tiles.append((key, text, estimate, (s.get("n") or {}).get(key) if estimate else None))
    return tiles, none


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
        if s["kind"] in FILL_N:
            s = summaries[k] = FILL_N[s["kind"]](s)
        pictures, folded = [], {}
        for rel, caption in s.get("figures", []) + s.get("images", []):
            src = s["_dir"] / rel
            if not src.is_file():
                raise FileNotFoundError(f"{src} is named in {s['folder']}/summary.json but missing")
            name = f"{k}_{Path(rel).name}"
            if src.resolve() != (assets / name).resolve():
                shutil.copyfile(src, assets / name)
            group = next((title for start, title in FOLD_FIGURES.items() if Path(rel).name.startswith(start)), None)
            (folded.setdefault(group, []) if group else pictures).append((name, caption, *_shown_size(src)))
        numbers, none_within = _tiles(s)
        sections.append({"title": s["title"], "finding": s.get("finding"), "text": s.get("text"),
                         "budget": s.get("budget") or budget_note(s["kind"], s.get("config", {})),
                         "numbers": numbers, "none_within": none_within,
                         "tables": [_table(t) for t in s.get("tables", [])], "pictures": pictures, "folded_pictures": folded})
    versions = package_versions()
    page = _template("report.html").render(title=title, css=CSS, check_js=CHECK_JS, sections=sections,
                                           versions=sorted((str(k), str(v)) for k, v in versions.items()))
    write_text_atomic(out / "index.html", page)
    write_json_atomic(out / "results.json", {
        "title": title, "versions": versions,
        "sections": [{k: v for k, v in s.items() if k != "_dir"} for s in summaries],
    })
    return out / "index.html"
