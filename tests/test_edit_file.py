"""Edit files are verified before anything is applied: every field of a real edit file tampered with, one
at a time, gives one clear ValueError sentence and leaves the model's weights as they were.

The edit is a real rank-one rewrite of the real MobileNetV2 (one exemplar, the last site). Tampered
tensors are tested twice: as they are (the digest catches them), and re-signed with a fresh digest, as a
careful forger or a format-1 file without digests would present them (the checks behind the digest
catch them: names, shapes, finiteness, magnitude). The command line refuses each with exit 2 and one line.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import load as st_load, save as st_save

from modeledit import get_site
from modeledit.edit import EDIT_FORMAT, MAX_CHANGE_RATIO, Edit, EditSequence, ParamChange, _record_digest
from modeledit.editor import EditConfig, rewrite
from modeledit.exemplars import Exemplars
from modeledit.stats import second_moment

pytestmark = pytest.mark.usefixtures("one_thread")
PARAM = "features.17.conv.2.weight"


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def made(mobilenet, tmp_path_factory, restyled_pairs, stats_batches):
    x, xp, m = restyled_pairs(1)
    site = get_site(mobilenet.model, 16)
    st = second_moment(mobilenet.model, site, stats_batches(), transform=mobilenet.normalize, progress=False)
    edit = rewrite(mobilenet, site, Exemplars(x, xp, m), config=EditConfig(), stats=st)
    folder = tmp_path_factory.mktemp("edits")
    edit.save(folder / "good")
    return mobilenet, edit, folder


def _tamper(folder: Path, name: str, record: Callable[[dict], Any] | None = None,
            tensors: Callable[[dict], Any] | None = None, resign: bool = False) -> Path:
    """A copy of the good edit with its JSON record and/or tensors changed; ``resign``: with fresh digests."""
    meta = json.loads((folder / "good.json").read_text())
    blob = (folder / "good.safetensors").read_bytes()
    if tensors is not None:
        flat = dict(st_load(blob))
        tensors(flat)
        blob = st_save(flat)
    if record is not None:
        record(meta)
    if resign:
        meta["digest"] = {"tensors": hashlib.sha256(blob).hexdigest(), "record": "0" * 64}
        meta["digest"]["record"] = _record_digest(meta)
    (folder / f"{name}.safetensors").write_bytes(blob)
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1))
    return folder / name


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _scale(k: str, by: float):
    def f(flat):
        flat[f"{PARAM}::{k}"] = flat[f"{PARAM}::{k}"] * by
    return f


def _poke(value: float):
    def f(flat):
        t = flat[f"{PARAM}::lam"].clone()
        t.view(-1)[7] = value
        flat[f"{PARAM}::lam"] = t
    return f


def _op(op):
    return lambda m: m["ops"].__setitem__(PARAM, op)


# (id, record change, tensors change, re-signed, expected message)
JSON_CASES = [
    ("format-99", _set("format", 99), None, False, r"has format 99, but this modeledit reads formats \[1, 2\]"),
    ("format-string", _set("format", "2"), None, False, r"has format '2'"),
    ("format-bool", _set("format", True), None, False, r"has format True"),
    ("format-missing", lambda m: m.pop("format"), None, False, r"has format None"),
    ("method-magic", _set("method", "magic"), None, False, r"names method 'magic', which modeledit does not know"),
    ("method-number", _set("method", 3), None, False, r"names method 3"),
    ("sites-other-layer", _set("sites", ["features.15"]), None, False, r"names site 'features.15', but none of the parameters it changes"),
    ("sites-empty", _set("sites", []), None, False, r"names no site under 'sites'"),
    ("sites-string", _set("sites", "features.17"), None, False, r"names no site under 'sites'"),
    ("sites-missing", lambda m: m.pop("sites"), None, False, r"names no site under 'sites'"),
    ("op-unknown", _op("magic"), None, False, r"changes 'features.17.conv.2.weight' by operation 'magic', which is not one of"),
    ("op-other-known", _op("delta"), None, True, r"the delta change of 'features.17.conv.2.weight' holds tensors \['dir', 'lam'\]"),
    ("ops-empty", _set("ops", {}), None, False, r"lists no parameter changes"),
    ("ops-renamed", lambda m: m.__setitem__("ops", {"features.17.conv.0.0.weight": "lowrank"}), None, False, r"one sha256 base hash for each"),
    ("base-hash-garbled", lambda m: m["base_hashes"].__setitem__(PARAM, "abc"), None, False, r"one sha256 base hash for each"),
    ("base-hash-other", lambda m: m["base_hashes"].__setitem__(PARAM, "f" * 64), None, False, r"does not match the digest it records"),
    ("base-hash-other-resigned", lambda m: m["base_hashes"].__setitem__(PARAM, "f" * 64), None, True, r"different base weight"),
    ("config-type", _set("config", "rank=1"), None, False, r"has 'config' of type str, not an object"),
    ("config-value", lambda m: m["config"].__setitem__("rank", 4), None, False, r"does not match the digest it records"),
    ("metrics-type", _set("metrics", [1, 2]), None, False, r"has 'metrics' of type list"),
    ("metrics-value", lambda m: m["metrics"].__setitem__("objective_after", 0.0), None, False, r"does not match the digest it records"),
    ("versions-type", _set("versions", "torch 2"), None, False, r"has 'versions' of type str"),
    ("versions-value", lambda m: m["versions"].__setitem__("torch", "0.1"), None, False, r"does not match the digest it records"),
    ("weights-type", _set("weights", "random"), None, False, r"has 'weights' of type str"),
    ("weights-value", _set("weights", {"model": "mobilenet_v2", "weights": "random"}), None, False, r"does not match the digest it records"),
    ("field-unknown", _set("note", "hi"), None, False, r"holds unknown field\(s\) \['note'\]"),
    ("digest-missing", lambda m: m.pop("digest"), None, False, r"\(format 2\) has no valid digest"),
    ("digest-garbled", _set("digest", {"tensors": "x", "record": "y"}), None, False, r"has no valid digest"),
    ("digest-tensors-other", lambda m: m["digest"].__setitem__("tensors", "0" * 64), None, False, r"edit tensors '.*' do not match the digest"),
    ("digest-record-other", lambda m: m["digest"].__setitem__("record", "0" * 64), None, False, r"does not match the digest it records"),
    # tensors changed, digest as saved: the digest catches them
    ("tensor-nan", None, _poke(float("nan")), False, r"edit tensors '.*' do not match the digest"),
    ("tensor-scaled", None, _scale("lam", 1e30), False, r"do not match the digest"),
    # tensors changed and re-signed: the checks behind the digest
    ("tensor-nan-resigned", None, _poke(float("nan")), True, r"tensor 'lam' of the change of 'features.17.conv.2.weight' holds NaN or infinite"),
    ("tensor-inf-resigned", None, _poke(float("inf")), True, r"holds NaN or infinite values"),
    ("tensor-scaled-resigned", None, _scale("lam", 1e30), True, r"would move 'features.17.conv.2.weight' by .* times the parameter's own norm"),
    ("tensor-overflow-resigned", None, lambda f: (_scale("lam", 1e30)(f), _scale("dir", 1e30)(f)), True, r"would put NaN or infinite values into 'features.17.conv.2.weight'"),
    ("tensor-wrong-shape-resigned", None, lambda f: f.__setitem__(f"{PARAM}::lam", f[f"{PARAM}::lam"][:100].clone()), True,
     r"has shapes .*\(100, 1, 1, 1\).* which do not fit the model's parameter of shape \(320, 960, 1, 1\)"),
    ("tensor-factors-disagree-resigned", None, lambda f: f.__setitem__(f"{PARAM}::dir", torch.zeros(960, 2)), True,
     r"lowrank factors do not fit each other"),
    ("tensor-missing-resigned", None, lambda f: f.pop(f"{PARAM}::dir"), True, r"holds tensors \['lam'\], but the operation takes \['dir', 'lam'\]"),
    ("tensor-extra-resigned", None, lambda f: f.__setitem__("features.1.conv.0.0.weight::lam", torch.zeros(1)), True,
     r"hold 'features.1.conv.0.0.weight::lam', which .* does not list"),
    ("tensor-integer-resigned", None, lambda f: f.__setitem__(f"{PARAM}::lam", f[f"{PARAM}::lam"].to(torch.int32)), True,
     r"tensor 'lam' .* is not a floating-point tensor"),
]


@pytest.mark.parametrize("case_id,record,tensors,resign,expected", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_tampered_file_refused_in_one_sentence_model_untouched(made, case_id, record, tensors, resign, expected):
    lm, edit, folder = made
    path = _tamper(folder, case_id, record, tensors, resign)
    before = _state(lm.model)
    with pytest.raises(ValueError, match=expected) as e:
        Edit.load(path, model=lm)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400 and msg.count(". ") == 0, msg
    assert _same(_state(lm.model), before)


def test_truncated_and_missing_files(made):
    lm, edit, folder = made
    path = _tamper(folder, "trunc")
    blob = (folder / "good.safetensors").read_bytes()
    (folder / "trunc.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"edit tensors '.*trunc.safetensors' cannot be read .*truncated or corrupt"):
        Edit.load(path, model=lm)
    (folder / "trunc.json").write_text((folder / "good.json").read_text()[:100])
    with pytest.raises(ValueError, match=r"is not valid JSON"):
        Edit.load(path)
    for suffix in (".json", ".safetensors"):
        shutil.copy(folder / f"good{suffix}", folder / f"half{suffix}")
        with pytest.raises(FileNotFoundError, match=r"edit file '.*half\.(json|safetensors)' does not exist"):
            Edit.load(folder / "half")
        (folder / f"half{suffix}").unlink()


def test_good_file_loads_and_applies_like_the_edit(made):
    lm, edit, folder = made
    before = _state(lm.model)
    meta = json.loads((folder / "good.json").read_text())
    assert meta["format"] == EDIT_FORMAT == 2 and set(meta["digest"]) == {"tensors", "record"}
    loaded = Edit.load(folder / "good", model=lm)
    with edit.applied(lm.model):
        a = _state(lm.model)
    with loaded.applied(lm.model):
        b = _state(lm.model)
    assert _same(a, b) and _same(_state(lm.model), before)
    # a real rank-one rewrite moves its weight by a small fraction of its norm: far from the bound
    w = dict(lm.model.named_parameters())[PARAM].detach()
    ratio = float((edit.new_values(lm.model)[PARAM] - w).norm() / w.norm())
    assert 1e-6 < ratio < 10 < MAX_CHANGE_RATIO


def test_format_1_file_loads_with_a_warning_and_is_still_checked(made, caplog):
    lm, edit, folder = made

    def as_v1(m):
        m["format"] = 1
        m.pop("digest")

    old = _tamper(folder, "v1", as_v1)
    with caplog.at_level(logging.WARNING, logger="modeledit.edit"):
        loaded = Edit.load(old, model=lm)
    assert "format 1 and carries no digest" in caplog.text
    with edit.applied(lm.model):
        a = _state(lm.model)
    with loaded.applied(lm.model):
        assert _same(_state(lm.model), a)
    bad = _tamper(folder, "v1nan", as_v1, _poke(float("nan")))
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        Edit.load(bad, model=lm)
    with pytest.raises(ValueError, match="is format 1, which has no digest, yet holds one"):
        Edit.load(_tamper(folder, "v1digest", _set("format", 1)), model=lm)


def test_load_without_model_then_apply_checks_before_touching(made):
    """Without a model, load cannot judge shapes or magnitudes: apply does, before changing anything."""
    lm, edit, folder = made
    before = _state(lm.model)
    scaled = Edit.load(_tamper(folder, "scaled-late", None, _scale("lam", 1e30), resign=True))
    with pytest.raises(ValueError, match="times the parameter's own norm"):
        scaled.apply(lm.model)
    with pytest.raises(ValueError, match="times the parameter's own norm"):
        scaled.apply(lm.model, force=True)       # force skips only the base hash
    assert _same(_state(lm.model), before) and not scaled.is_applied(lm.model)
    narrow = Edit.load(_tamper(folder, "shape-late", None, lambda f: f.__setitem__(f"{PARAM}::dir", f[f"{PARAM}::dir"][:500].clone()),
                               resign=True))
    with pytest.raises(ValueError, match=r"do not fit the model's parameter of shape \(320, 960, 1, 1\)"):
        narrow.apply(lm.model)
    assert _same(_state(lm.model), before)


def test_edits_made_in_python_are_checked_too(made, tmp_path):
    lm, edit, folder = made
    before = _state(lm.model)
    for change, expected in ((ParamChange("magic", {"x": torch.zeros(1)}), "operation 'magic'"),
                             (ParamChange("delta", {"delta": torch.full((320, 960, 1, 1), float("nan"))}), "NaN or infinite"),
                             (ParamChange("delta", {"delta": torch.zeros(3, 3)}), "do not fit the model's parameter"),
                             (ParamChange("delta", {"delta": torch.full((320, 960, 1, 1), 1e9)}), "times the parameter's own norm")):
        bad = Edit.from_changes(lm.model, "rewrite", {PARAM: change}, sites=["features.17"])
        with pytest.raises(ValueError, match=expected):
            bad.apply(lm.model)
        with pytest.raises(ValueError, match=expected):
            with bad.applied(lm.model):
                pass
        assert _same(_state(lm.model), before)
    magic = Edit.from_changes(lm.model, "magic", dict(edit.changes), sites=list(edit.sites))
    with pytest.raises(ValueError, match="method 'magic' is not one modeledit knows"):
        magic.save(tmp_path / "magic")
    assert not list(tmp_path.iterdir())
    # a sequence whose second edit is bad applies nothing
    bad = Edit.from_changes(lm.model, "rewrite", {PARAM: ParamChange("delta", {"delta": torch.zeros(3, 3)})}, sites=["features.17"])
    seq = EditSequence([edit, bad])
    with pytest.raises(ValueError, match="do not fit"):
        seq.apply(lm.model)
    assert _same(_state(lm.model), before) and not edit.is_applied(lm.model)


def test_cli_apply_refuses_a_tampered_file_with_exit_2(made, tmp_path, capsys):
    from PIL import Image
    import skimage.data

    from modeledit.cli import main

    lm, edit, folder = made
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "cat.png")
    assert main(["apply", "mobilenet_v2", str(folder / "good"), str(tmp_path / "cat.png"), "--json"]) == 0
    capsys.readouterr()
    for case_id, record, tensors, resign in (("cli-nan", None, _poke(float("nan")), True), ("cli-sites", _set("sites", ["features.16"]), None, False),
                                             ("cli-format", _set("format", 99), None, False), ("cli-scaled", None, _scale("lam", 1e30), True)):
        path = _tamper(folder, case_id, record, tensors, resign)
        code = main(["apply", "mobilenet_v2", str(path), str(tmp_path / "cat.png")])
        captured = capsys.readouterr()
        lines = [x for x in captured.err.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, captured.err
        assert lines[0].startswith("modeledit apply: error: edit"), lines[0]
        assert "nan" not in captured.out.lower() and not captured.out.strip()
