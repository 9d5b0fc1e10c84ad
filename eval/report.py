"""A self-contained HTML report built from harness outputs.

Every harness writes a ``summary.json`` in its output folder: ``kind``, ``title``, ``text`` (a short
reading), ``numbers`` (flat dict of key figures), ``tables`` (list of ``{title, columns, rows}``),
``figures`` and ``images`` (paths relative to that folder, with captions). :func:`build_report` collects
every summary under a results folder, copies the pictures next to the page, and writes ``index.html``
(no network needed to view it) and ``results.json`` with every number shown.

Example:
    >>> build_report("report/")            # -> report/index.html, report/results.json
"""
from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from modeledit.atomic import write_json_atomic, write_text_atomic
from modeledit.provenance import package_versions

ORDER = {"sensitivity": 0, "bench": 1, "typographic": 2, "snow": 3, "photos": 4}


def write_summary(out_dir: str | os.PathLike, kind: str, title: str, numbers: Mapping[str, Any], text: str = "",
                  tables: list[Mapping[str, Any]] | None = None, figures: list[tuple[str, str]] | None = None,
                  images: list[tuple[str, str]] | None = None, config: Mapping[str, Any] | None = None) -> Path:
    """Write a harness's ``summary.json`` (figures/images: ``(relative path, caption)``)."""
    path = Path(out_dir) / "summary.json"
    write_json_atomic(path, {
        "kind": kind, "title": title, "text": text, "numbers": dict(numbers), "tables": list(tables or []),
        "figures": [list(f) for f in figures or []], "images": [list(i) for i in images or []],
        "config": dict(config or {}), "versions": package_versions(),
    })
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return html.escape(str(v))


def _table(t: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t["columns"])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in t["columns"]) + "</tr>" for r in t["rows"])
    return f"<h3>{html.escape(t.get('title', ''))}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.num{display:inline-block;margin:0 1.2em .6em 0}.num b{font-size:1.3em;display:block}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:520px}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}.meta{font-size:.8em;color:#777}"""

CHECK_JS = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
document.body.setAttribute('data-images-loaded',ok+'/'+im.length);});"""


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, title: str = "modeledit report") -> Path:
    """Collect ``summary.json`` files under ``results_dir`` into ``out_dir/index.html`` (default: results_dir)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {str(root)!r} does not exist")
    out = Path(out_dir) if out_dir else root
    summaries = []
    for f in sorted(root.rglob("summary.json")):
        s = json.loads(f.read_text())
        s["folder"] = str(f.parent.relative_to(root))
        s["_dir"] = f.parent
        summaries.append(s)
    if not summaries:
        raise ValueError(f"no harness results (summary.json) under {str(root)!r}; run a harness with --out there first")
    summaries.sort(key=lambda s: (ORDER.get(s["kind"], 99), s["folder"]))
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for k, s in enumerate(summaries):
        parts.append(f"<h2 id='s{k}'>{html.escape(s['title'])}</h2>")
        if s.get("text"):
            parts.append(f"<p>{html.escape(s['text'])}</p>")
        parts.append("<div>" + "".join(f"<span class='num' data-key='{html.escape(n)}'><b>{_fmt(v)}</b>{html.escape(n)}</span>" for n, v in s["numbers"].items()) + "</div>")
        parts += [_table(t) for t in s.get("tables", [])]
        for rel, caption in s.get("figures", []) + s.get("images", []):
            src = s["_dir"] / rel
            if not src.is_file():
                raise FileNotFoundError(f"{src} is named in {s['folder']}/summary.json but missing")
            name = f"{k}_{Path(rel).name}"
            if src.resolve() != (assets / name).resolve():
                shutil.copyfile(src, assets / name)
            parts.append(f"<figure><img src='assets/{html.escape(name)}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    versions = package_versions()
    parts.append(f"<p class='meta'>versions: {html.escape(json.dumps(versions))}</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
            f"<script>{CHECK_JS}</script></head><body>{''.join(parts)}</body></html>")
    write_text_atomic(out / "index.html", page)
    write_json_atomic(out / "results.json", {
        "title": title, "versions": versions,
        "sections": [{k: v for k, v in s.items() if k != "_dir"} for s in summaries],
    })
    return out / "index.html"
