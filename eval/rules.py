"""The rules study on the world (issue 27): many rules in one solve and long sequences, against single edits.

Every admitted concept-style pair x target class is a *rule* (the science rules: pairs selected on ``world:val``
by the paper's rule, exemplars / val / test from ``world:test`` by :func:`modeledit.eval.protocol.split_pair`,
clean change on ``world:clean:10000``, statistics C from ``world:train``; the pair data come from
:class:`modeledit.eval.bench.BenchRunner`, the bench's own machinery). Variants, each at full strength (the whole
closed-form update, no strength selection):

* ``single``: each rule alone (``closed_form``, rank 1); ``single_linear`` the same with the ``linear`` solver;
* ``batch``: all rules in one solve (:func:`modeledit.rules.rewrite_rules`, ``linear``: the closed form's
  per-channel IRLS is refused beyond ~10 rules at this site); ``batch_full`` its unrestricted (MEMIT) form;
* ``per_pair``: one joint solve per concept-style pair (its target classes; ``closed_form``), each applied alone;
* ``sequence`` / ``sequence_keep``: every rule in a seeded random order, each edit solved on the model carrying the
  earlier ones (:class:`modeledit.rules.RuleSequence`), without / with preservation of earlier rules' keys;
* ``batch_k``: the first k rules of the seeded order in one solve, k = 1, 3, 10, 30, all (correction vs number of rules);
* ``single_sel`` / ``batch_sel``: single edits and the one joint solve with strength (and norm weight) selected within
  ``budget`` on each rule's validation half, reported on its test half; ``finetune_sel`` the baseline row: fine-tuning
  and PAINT (local, global) on all rules' exemplars at once, selected the same way;
* ``sequence_grid``: preserved sequences of all rules under :data:`SEQUENCE_GRID`'s settings, measured on the halves
  after every step, one chosen on validation (how :data:`modeledit.rules.SEQUENCE_DEFAULTS` were set);
* ``stress``: a preserved sequence of ``stress_draws`` exemplar draws per rule (540 on world_vgg), checkpoints every
  ``stress_every`` steps; ``sites``: :func:`modeledit.rules.rank_sites` per rule (``sites_per_pair`` of each pair).

Per rule: errors corrected (thesis 6.3) on its own test images (the exemplars' style image), retention after the
rest (sequences: correction at the end / right after its own step), clean change (accuracy and flips on the clean
set). Results are per-variant CSVs (rewritten atomically after every unit: a rerun resumes), ``sequence_*_steps.csv``
(every earlier rule after every step), ``summary.csv`` (paired 95% intervals against ``single``, resampling pairs) and
``manifest.json``.

Example:
    >>> cfg = RulesStudyConfig(bench=BenchConfig(model="world_vgg", dataset="world:test:1800", clean="world:clean:10000",
    ...                        sensitivity="results/world/science/world_vgg/selection/table.csv", max_pairs=None, n_targets=3))
    >>> run_rules_study(cfg, "results/world/rules/world_vgg")
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from modeledit.config import JsonConfig
from modeledit.eval.bench import BenchConfig

log = logging.getLogger(__name__)

VARIANTS = ("single", "single_linear", "batch", "batch_full", "per_pair", "sequence", "sequence_keep", "batch_k", "sites",
            "single_sel", "batch_sel", "keep_grid", "sequence_keep_directions", "sequence_grid", "finetune_sel", "stress")
#: the baseline row (``finetune_sel``): fine-tuning on all rules' exemplars at once, and PAINT (alpha 1 is the fine-tuning)
FINETUNE_METHODS = ("paint_local", "paint_global")
#: the preserved sequence's settings compared by ``keep_grid`` (form, norm_weight, past_weight, keep_train)
KEEP_GRID = tuple((f, nw, pw, False) for f, nws in (("full", (1e-1, 1.0, 10.0)), ("directions", (1e-2, 1e-1, 1.0)))
                  for nw in nws for pw in (1.0, 10.0)) + (("full", 1.0, 1.0, True), ("directions", 1e-1, 1.0, True))
#: the preserved sequences compared on all rules by ``sequence_grid`` (form, norm_weight, past_weight, past_mode): the
#: library's default then (directions, past summed, weight 1), weaker summed protection, the averaged past term
#: (modeledit.rules.PAST_MODES) at three weights, and the full form that met goal (b) in world_vgg/
SEQUENCE_GRID = (("directions", 1e-2, 1.0, "sum"), ("directions", 1e-2, 0.3, "sum"), ("directions", 1e-2, 3.0, "mean"),
                 ("directions", 1e-2, 10.0, "mean"), ("directions", 1e-2, 30.0, "mean"), ("full", 10.0, 10.0, "sum"),
                 ("full", 10.0, 30.0, "mean"), ("full", 10.0, 100.0, "mean"))
#: ``sequence_grid`` picks, on the validation halves, the setting with the most errors corrected at the end among those
#: where at least this share of the rules (whose own step fixed something) keep >= 90% of their fix
RETAINED_SHARE = 0.95
BATCH_KS = (1, 3, 10, 30)
#: strengths (fractions of the solved update) and norm weights tried by the selected variants (single_sel, batch_sel, batch_k)
SEL_STRENGTHS = (0.125, 0.25, 0.5, 0.75, 1.0)
SEL_NORM_WEIGHTS = (0.0, 1e-2, 1e-1, 1.0)


@dataclass
class RulesStudyConfig(JsonConfig):
    bench: BenchConfig = field(default_factory=BenchConfig)
    site: str = "-1"
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    order_seed: int = 0
    max_rules: int | None = None
    keep_threshold: float | None = None        # None: modeledit.rules.KEEP_THRESHOLD
    max_norm: float | None = None
    # sequence_keep (AlphaEdit's objective, modeledit.rules.RuleSequence): the form, the norm and past-keys weights,
    # and whether the training statistics are kept (K0: projected at keep_threshold and penalised)
    # (None: modeledit.rules.SEQUENCE_DEFAULTS; the committed world_vgg/ ran before those existed and set
    # full / norm 10 / past 10, summed: past_mode was not a setting then)
    keep_form: str | None = None
    norm_weight: float | None = None
    past_weight: float | None = None
    past_mode: str | None = None
    keep_train: bool = False
    # the selected variants: the clean-accuracy budget (goal: <= 1 pp) and the val/test halves of each unit's test images
    budget: float = 0.01
    # sites: rank the sites of only the first k rules of each pair (None: every rule); a rerun with a larger k adds the rest
    sites_per_pair: int | None = None
    # stress: exemplar draws per rule (the rule's own exemplars, then draws of 3 target-class images from its validation
    # half), the preserved settings compared (modeledit.rules.SEQUENCE_DEFAULTS and AlphaEdit's summed past term) and
    # the checkpoint interval (every rule's test half and the clean set measured every so many steps)
    stress_draws: int = 9
    stress_every: int = 30

    def __post_init__(self) -> None:
        if isinstance(self.bench, Mapping):
            self.bench = BenchConfig(**self.bench)
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
        for name in ("stress_draws", "stress_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {getattr(self, name)!r}")
        from modeledit.rules import FORMS, PAST_MODES
        for name, allowed in (("keep_form", FORMS), ("past_mode", PAST_MODES)):
            if getattr(self, name) is not None and getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {list(allowed)} (or None for SEQUENCE_DEFAULTS)")
        if self.sites_per_pair is not None and not (isinstance(self.sites_per_pair, int) and self.sites_per_pair >= 1):
            raise ValueError(f"sites_per_pair must be a whole number >= 1 (or None for every rule), got {self.sites_per_pair!r}")


@dataclass
class Unit:
    key: str
    pair: str
    rule: Any                 # modeledit.rules.Rule
    test: tuple[torch.Tensor, torch.Tensor, np.ndarray]


def _unit_cache(cfg: RulesStudyConfig) -> Path:
    """Where built rules are kept between runs (outside the repository): keyed by everything that defines them."""
    import hashlib

    from modeledit.stats import cache_root

    b = cfg.bench
    ident = json.dumps([b.model, b.weights, b.dataset, b.sensitivity, b.protocol.to_json() if hasattr(b.protocol, "to_json") else str(b.protocol),
                        b.n_exemplars, b.seeds, b.n_targets, b.exemplar_style_image, b.segmenter, b.stylizer], default=str)
    return cache_root() / "rules_study" / hashlib.sha256(ident.encode()).hexdigest()[:16]


def _u8(t: torch.Tensor) -> torch.Tensor:
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)


def _build_pair(runner: Any, pair: Mapping[str, Any], targets: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Each target's exemplars and test images of one pair, restyling the pair's images once for all its targets (the
    splits are :func:`~modeledit.eval.protocol.split_pair`'s, as the bench draws them)."""
    from modeledit.counterfactuals import restyle
    from modeledit.eval.protocol import split_pair

    t0 = time.perf_counter()
    b = runner.cfg
    masks = runner.concept_masks(pair["concept"])
    idx = sorted(masks)
    labels = {i: int(runner.data[i][1]) for i in idx}
    names = runner.lm.class_names
    cand = [names.index(c) for c in pair["candidates"]]
    splits = {t: split_pair(idx, [labels[i] for i in idx], cand, b.n_exemplars[0], b.protocol.val_fraction, b.seeds[0],
                            target=names.index(t)) for t in targets}
    used = sorted(set().union(*[set(s.exemplars) | set(s.test) for s in splits.values()]))
    x = {i: runner.data[i][0] for i in used}
    xt: dict[int, torch.Tensor] = {}
    for start in range(0, len(used), b.batch_size):
        chunk = used[start:start + b.batch_size]
        out = restyle(torch.stack([x[i] for i in chunk]), np.stack([masks[i] for i in chunk]), pair["style"], b.exemplar_style_image,
                      runner.stylizer())
        xt.update({i: out[k] for k, i in enumerate(chunk)})
    res = {}
    for t, s in splits.items():
        res[t] = {"ex_x": _u8(torch.stack([x[i] for i in s.exemplars])), "ex_xp": _u8(torch.stack([xt[i] for i in s.exemplars])),
                  "ex_m": torch.stack([torch.as_tensor(masks[i]).float() for i in s.exemplars])[:, None],
                  "test_x": _u8(torch.stack([x[i] for i in s.test])), "test_xp": _u8(torch.stack([xt[i] for i in s.test])),
                  "test_y": torch.tensor([labels[i] for i in s.test])}
    log.info("pair %s|%s built in %.0fs (%d images restyled)", pair["concept"], pair["style"], time.perf_counter() - t0, len(used))
    return res


def study_units(runner: Any, cfg: RulesStudyConfig) -> list[Unit]:
    """Every admitted pair x target class as a rule with its test images, in the bench's order. Built rules are cached
    on disk (as 8-bit images: the world's originals are 8-bit, restyled ones are rounded to 8 bits), so a resumed study does not
    restyle again."""
    from modeledit.eval.bench import choose_pairs
    from modeledit.eval.protocol import choose_targets
    from modeledit.exemplars import Exemplars
    from modeledit.rules import Rule

    b = cfg.bench
    cache = _unit_cache(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    units = []
    for pair in choose_pairs(b):
        targets = choose_targets(pair["candidates"], b.n_targets or 1, b.protocol.seed)
        built: dict[str, dict[str, torch.Tensor]] = {}
        for target in targets:
            key = f"{pair['concept']}|{pair['style']}|{target}"
            path = cache / (key.replace("|", "__").replace(" ", "_") + ".pt")
            if path.is_file():
                d = torch.load(path, weights_only=True)
            else:
                if not built:
                    built = _build_pair(runner, pair, targets)
                d = built[target]
                torch.save(d, path)
            f = lambda t: t.float() / 255  # noqa: E731
            ex = Exemplars(f(d["ex_x"]), f(d["ex_xp"]), d["ex_m"])
            units.append(Unit(key, f"{pair['concept']}|{pair['style']}", Rule(key, ex), (f(d["test_x"]), f(d["test_xp"]), d["test_y"].numpy())))
            if cfg.max_rules is not None and len(units) >= cfg.max_rules:
                return units
    return units


class _Evaluator:
    """Base predictions once; an edited model's predictions on every unit's test images and the clean set from the site on."""

    def __init__(self, runner: Any, units: Sequence[Unit], site: Any) -> None:
        from modeledit.suffix import SuffixEvaluator

        self.site, self.model, self.class_names = site, runner.lm.model, runner.lm.class_names
        self.ev = SuffixEvaluator(self.model, runner.lm.normalize, runner.cfg.cache)
        cx, cy, _ = runner.clean_set()
        self.clean, self.cy = self.ev.image_set(cx), cy.numpy()
        self.sets = {u.key: (self.ev.image_set(u.test[0]), self.ev.image_set(u.test[1])) for u in units}
        self.y = {u.key: u.test[2] for u in units}
        self.cpre = self.predict_clean()
        self.orig_ok = {k: self.ev.predict(s[0], site).numpy() == self.y[k] for k, s in self.sets.items()}
        self.pre_ok = {k: self.ev.predict(s[1], site).numpy() == self.y[k] for k, s in self.sets.items()}

    def halves(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """A unit's test images split at random (seeded by its name) into a validation half and a test half."""
        import zlib

        n = len(self.y[key])
        perm = np.random.default_rng(zlib.crc32(key.encode())).permutation(n)
        return np.sort(perm[:n // 2]), np.sort(perm[n // 2:])

    def split_rows(self, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """rule_row on the validation half and on the test half (one prediction pass)."""
        post_ok = self.ev.predict(self.sets[key][1], self.site).numpy() == self.y[key]
        out = []
        for idx in self.halves(key):
            ok, pre = self.orig_ok[key][idx], self.pre_ok[key][idx]
            n_pre, n_post = int((ok & ~pre).sum()), int((ok & ~post_ok[idx]).sum())
            out.append({"n_pre": n_pre, "n_post": n_post, "corrected": (n_pre - n_post) / n_pre if n_pre else float("nan")})
        return out[0], out[1]

    def predict_clean(self) -> np.ndarray:
        return self.ev.predict(self.clean, self.site).numpy()

    def rule_row(self, key: str) -> dict[str, Any]:
        post_ok = self.ev.predict(self.sets[key][1], self.site).numpy() == self.y[key]
        ok = self.orig_ok[key]
        n_pre, n_post = int((ok & ~self.pre_ok[key]).sum()), int((ok & ~post_ok).sum())
        return {"n_pre": n_pre, "n_post": n_post, "corrected": (n_pre - n_post) / n_pre if n_pre else float("nan")}

    def clean_row(self, cpost: np.ndarray | None = None) -> dict[str, Any]:
        cpost = self.predict_clean() if cpost is None else cpost
        pre_ok, post_ok = self.cpre == self.cy, cpost == self.cy
        return {"clean_acc_change": float(post_ok.mean() - pre_ok.mean()), "clean_changed": float((cpost != self.cpre).mean()),
                "clean_flips_bad": int((pre_ok & ~post_ok).sum()), "clean_flips_good": int((~pre_ok & post_ok).sum())}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    from modeledit.atomic import write_text_atomic

    write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))


def _done(path: Path) -> list[dict[str, Any]]:
    return pd.read_csv(path).to_dict("records") if path.is_file() and path.stat().st_size > 0 else []


#: the preserved settings of the stress sequence: (name, RuleSequence keywords; ``keep_train``: also keep the training
#: statistics C at every step, AlphaEdit's K0, projected at keep_threshold and penalised at keep_weight)
STRESS_SETTINGS = (("defaults", {}), ("summed_past", {"past_mode": "sum", "past_weight": 10.0}), ("keep_train", {"keep_train": True}))


def stress_rules(units: Sequence[Unit], ev: "_Evaluator", draws: int, seed: int = 0) -> list[tuple[Unit, Any]]:
    """(unit, rule) for every exemplar draw: each unit's own rule, then ``draws - 1`` rules of 3 images of its target class
    drawn from its validation half (so its test half, where it is measured, stays out of every exemplar)."""
    from modeledit.exemplars import Exemplars
    from modeledit.rules import Rule

    rng = np.random.default_rng(seed)
    out = []
    for u in units:
        out.append((u, u.rule))
        val, _ = ev.halves(u.key)
        target = _target_index(u, ev.class_names)
        pool = [int(i) for i in val if int(u.test[2][i]) == target]
        for d in range(1, draws):
            if not pool:
                break
            pick = sorted(rng.choice(pool, size=min(3, len(pool)), replace=False).tolist())
            out.append((u, Rule(f"{u.key}#draw{d}", Exemplars(u.test[0][pick], u.test[1][pick]))))
    return out


def _target_index(u: Unit, class_names: Sequence[str]) -> int:
    """The class index of a rule's target class (the last part of its key, concept|style|target)."""
    return list(class_names).index(u.key.split("|")[2])


def _stress(lm: Any, site: Any, st: Any, units: Sequence[Unit], ev: "_Evaluator", cfg: RulesStudyConfig, rows: list[dict[str, Any]],
            path: Path, base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A long preserved sequence of every exemplar draw of every rule (cfg.stress_draws per rule, seeded order), per
    setting of :data:`STRESS_SETTINGS`: every ``cfg.stress_every`` steps, each rule's correction on its test half (once
    any of its draws is in) and the clean change (``stress.csv``: one row per setting and checkpoint)."""
    from modeledit.progress import tqdm
    from modeledit.rules import RuleSequence

    done = {r["setting"] for r in rows}
    pairs = stress_rules(units, ev, cfg.stress_draws, cfg.order_seed)
    order = [pairs[i] for i in np.random.default_rng(cfg.order_seed).permutation(len(pairs))]
    for name, kw in STRESS_SETTINGS:
        if name in done:
            continue
        t1 = time.perf_counter()
        seq = RuleSequence(lm, site, stats=st, preserve=True, keep=st if kw.get("keep_train") else None,
                           **{k: v for k, v in kw.items() if k != "keep_train"})
        seen: set[str] = set()
        for i, (u, rule) in enumerate(tqdm(order, desc=f"stress {name}")):
            seq.add(rule)
            seen.add(u.key)
            if (i + 1) % cfg.stress_every and i + 1 != len(order):
                continue
            with seq.applied():
                corr = [ev.split_rows(k)[1]["corrected"] for k in sorted(seen)]
                clean = ev.clean_row()
            corr = [c for c in corr if c == c]
            rows.append({**base, "variant": "stress", "setting": name, **{k: v for k, v in kw.items()}, "step": i + 1,
                         "n_rules_total": len(order), "units_in": len(seen), "corrected_mean": float(np.mean(corr)) if corr else float("nan"),
                         "corrected_min": float(np.min(corr)) if corr else float("nan"),
                         "objective_before_step": seq.edits.edits[-1].metrics["objective_before"],
                         "update_norm_step": seq.edits.edits[-1].metrics["update_norm"], **clean, "seconds": time.perf_counter() - t1})
            log.info("stress %s: step %d/%d, %d units, mean correction %.3f, clean %+.4f", name, i + 1, len(order), len(seen),
                     rows[-1]["corrected_mean"], clean["clean_acc_change"])
            _write(path, rows)
    return rows


def check_same_study(old: Mapping[str, Any], cfg: RulesStudyConfig, out: Any = "the folder") -> None:
    """Refuse to resume a folder whose manifest config ``old`` defines other rules than ``cfg``: the bench config (read as
    any bench version wrote it, :meth:`BenchConfig.from_manifest`: a field added later takes its default), the site,
    the order's seed and ``max_rules``. Variants and their settings may differ (each writes its own files)."""
    new = json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else asdict(cfg)))
    old_bench = BenchConfig.from_manifest(old["bench"]) if isinstance(old.get("bench"), Mapping) else None
    if old_bench != cfg.bench or any(old.get(k) != new.get(k) for k in ("site", "order_seed", "max_rules")):
        raise ValueError(f"{out} holds a study with another configuration; use a new --out folder or the same settings")


def run_rules_study(cfg: RulesStudyConfig, out_dir: str | Path) -> Path:
    """Run (or resume) the study into ``out_dir``; returns the summary CSV's path."""
    import warnings

    from modeledit.atomic import write_json_atomic
    from modeledit.editor import EditConfig, rewrite
    from modeledit.eval.bench import BenchRunner
    from modeledit.layers import get_site
    from modeledit.progress import tqdm
    from modeledit.provenance import package_versions
    from modeledit.eval.protocol import choose_setting
    from modeledit.rules import KEEP_THRESHOLD, RuleSequence, rewrite_rules, scale_edit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    conf = cfg.to_dict() if hasattr(cfg, "to_dict") else asdict(cfg)
    runs: list[dict[str, Any]] = []          # every run into this folder: its variants and settings (the config is the latest)
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        check_same_study(old.get("config", {}), cfg, out)
        runs = old.get("runs") or [{"variants": old.get("config", {}).get("variants"), "config": old.get("config"),
                                    "status": old.get("status"), "seconds": old.get("seconds_this_run")}]
    run = {"variants": list(cfg.variants), "config": conf, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "running"}
    keep_thr = KEEP_THRESHOLD if cfg.keep_threshold is None else cfg.keep_threshold
    t0 = time.perf_counter()
    runner = BenchRunner(cfg.bench)
    lm = runner.lm
    site = get_site(lm.model, cfg.site)
    st = runner.statistics(site)
    log.info("rules study: building the rules (pairs' counterfactuals)")
    units = study_units(runner, cfg)
    order = [units[i] for i in np.random.default_rng(cfg.order_seed).permutation(len(units))]
    write_json_atomic(manifest_path, {"harness": "rules", "config": conf, "versions": package_versions(), "site": site.name, "n_rules": len(units),
                                      "rules": [u.key for u in units], "sequence_order": [u.key for u in order],
                                      "keep_threshold": keep_thr, "status": "running", "runs": [*runs, run]})
    ev = _Evaluator(runner, units, site)
    warnings.simplefilter("ignore", UserWarning)
    cf = EditConfig(solver="closed_form")
    base = {"model": cfg.bench.model, "site": site.name}

    def unit_meta(u: Unit) -> dict[str, Any]:
        concept, style, target = u.key.split("|")
        return {**base, "rule": u.key, "pair": u.pair, "concept": concept, "style": style, "target_class": target}

    def measured(us: Sequence[Unit]) -> tuple[dict[str, Any], dict[str, Any]]:
        """With an edit applied: (the rules' mean validation correction, the clean drop and change; each rule's halves)."""
        split = {u.key: ev.split_rows(u.key) for u in us}
        clean = ev.clean_row()
        vals = [v["corrected"] for v, _ in split.values() if v["corrected"] == v["corrected"]]
        return {"val_corrected": float(np.mean(vals)) if vals else float("nan"), "clean_drop": -clean["clean_acc_change"], **clean}, split

    def select(us: Sequence[Unit], edits: Sequence[tuple[dict[str, Any], Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Each (setting, rewrite) at every strength: the rules' mean validation correction and the clean drop; the
        setting chosen within the budget and each rule's row (test half) under it (:func:`choose`). Returns (rows, grid)."""
        runs = []
        for setting, edit in edits:
            for strength in SEL_STRENGTHS:
                with scale_edit(edit, strength).applied(lm.model):
                    g, split = measured(us)
                runs.append(({**setting, "strength": strength, **g}, split, setting))
        return choose(us, runs)

    def choose(us: Sequence[Unit], runs: Sequence[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(grid row, each rule's halves, setting) per measured setting: the one chosen within the budget (choose_setting:
        no change when none qualifies or none beats it) and each rule's row (test half) under it. Returns (rows, grid)."""
        grid = [g for g, _, _ in runs]
        chosen = choose_setting(grid, cfg.budget)
        rows = []
        for u in us:
            if chosen is None:
                _, t = runs[0][1][u.key]
                t = {**t, "n_post": t["n_pre"], "corrected": 0.0 if t["n_pre"] else float("nan")}
                clean = {"clean_acc_change": 0.0, "clean_changed": 0.0, "clean_flips_bad": 0, "clean_flips_good": 0}
                rows.append({**unit_meta(u), **t, **clean, "chosen": "no change", "strength": 0.0, "val_corrected": float("nan")})
            else:
                g, split, setting = next(r for r in runs if r[0] is chosen)
                v, t = split[u.key]
                rows.append({**unit_meta(u), **t, **{k: g[k] for k in ("clean_acc_change", "clean_changed", "clean_flips_bad",
                                                                       "clean_flips_good")},
                             **{k: g[k] for k in setting if k in g}, "chosen": "setting", "strength": g["strength"],
                             "val_corrected": v["corrected"], "val_corrected_mean": g["val_corrected"]})
        return rows, grid

    for variant in cfg.variants:
        path = out / f"{variant}.csv"
        rows = _done(path)
        if variant in ("single", "single_linear"):
            done = {r["rule"] for r in rows}
            solver = "closed_form" if variant == "single" else "linear"
            for u in tqdm([u for u in units if u.key not in done], desc=variant):
                edit = rewrite(lm, site, u.rule.exemplars, config=EditConfig(solver=solver), stats=st)
                with edit.applied(lm.model):
                    rows.append({**unit_meta(u), "variant": variant, **ev.rule_row(u.key), **ev.clean_row(),
                                 "objective_before": edit.metrics["objective_before"], "objective_after": edit.metrics["objective_after"]})
                _write(path, rows)
        elif variant in ("batch", "batch_full") and not rows:
            edit = rewrite_rules(lm, [u.rule for u in units], site, stats=st, solver="linear", form="full" if variant == "batch_full" else "directions")
            obj = {r["name"]: r for r in edit.metrics["rules"]}
            with edit.applied(lm.model):
                clean = ev.clean_row()
                rows = [{**unit_meta(u), "variant": variant, **ev.rule_row(u.key), **clean, "objective_before": obj[u.key]["objective_before"],
                         "objective_after": obj[u.key]["objective_after"], "rank": edit.metrics["rank"]} for u in units]
            _write(path, rows)
        elif variant == "per_pair":
            done = {r["pair"] for r in rows}
            pairs = list(dict.fromkeys(u.pair for u in units))
            for pair in tqdm([p for p in pairs if p not in done], desc=variant):
                us = [u for u in units if u.pair == pair]
                edit = rewrite_rules(lm, [u.rule for u in us], site, cf, stats=st)
                obj = {r["name"]: r for r in edit.metrics["rules"]}
                with edit.applied(lm.model):
                    clean = ev.clean_row()
                    rows += [{**unit_meta(u), "variant": variant, **ev.rule_row(u.key), **clean, "objective_before": obj[u.key]["objective_before"],
                              "objective_after": obj[u.key]["objective_after"]} for u in us]
                _write(path, rows)
        elif variant in ("sequence", "sequence_keep", "sequence_keep_directions") and not rows:
            from modeledit.rules import measure_sequence

            if variant == "sequence":
                seq = RuleSequence(lm, site, stats=st, config=cf, preserve=False, max_norm=cfg.max_norm)
            elif variant == "sequence_keep_directions":      # the library's defaults before sequence_grid (each rule's own direction)
                from modeledit.rules import NORM_WEIGHT
                seq = RuleSequence(lm, site, stats=st, preserve=True, keep_threshold=keep_thr, max_norm=cfg.max_norm, form="directions",
                                   norm_weight=NORM_WEIGHT, past_weight=1.0, past_mode="sum")   # the defaults when it ran (its first edit was then closed-form)
            else:                                            # the config's settings; those left None: SEQUENCE_DEFAULTS
                seq = RuleSequence(lm, site, stats=st, config=cf, preserve=True, keep=st if cfg.keep_train else None,
                                   keep_threshold=keep_thr, max_norm=cfg.max_norm, form=cfg.keep_form,
                                   norm_weight=cfg.norm_weight, past_weight=cfg.past_weight, past_mode=cfg.past_mode)
            for u in tqdm(order, desc=variant):
                seq.add(u.rule)
            steps = measure_sequence(seq, {u.key: (u.test[0], u.test[1], u.test[2]) for u in order},
                                     clean=(runner.clean_set()[0], runner.clean_set()[1].numpy()))
            meta = {u.key: unit_meta(u) for u in order}
            null = {i: e.metrics["keep"]["null_dim"] for i, e in enumerate(seq.edits.edits)}
            objs = {i: e.metrics["objective_before"] for i, e in enumerate(seq.edits.edits)}
            steps = [{**meta[s["rule"]], "variant": variant, **s, "null_dim_at_step": null[s["step"]],
                      "objective_before_step": objs[s["step"]]} for s in steps]
            _write(out / f"{variant}_steps.csv", steps)
            last = len(order) - 1
            own = {s["rule"]: s for s in steps if order[s["step"]].key == s["rule"]}
            pos = {u.key: i for i, u in enumerate(order)}
            rows = [{**s, "corrected_own_step": own[s["rule"]]["corrected"], "null_dim": null[pos[s["rule"]]], "position": pos[s["rule"]]}
                    for s in steps if s["step"] == last]
            _write(path, rows)
        elif variant == "batch_k":
            done = {int(r["k"]) for r in rows}
            for k in tqdm([k for k in sorted({*BATCH_KS, len(order)}) if k <= len(order) and k not in done], desc=variant):
                us = order[:k]
                edits = [({"norm_weight": nw}, rewrite_rules(lm, [u.rule for u in us], site, stats=st, solver="linear", norm_weight=nw))
                         for nw in SEL_NORM_WEIGHTS]
                r, _ = select(us, edits)
                rows += [{**x, "variant": variant, "k": k, "budget": cfg.budget} for x in r]
                _write(path, rows)
        elif variant == "single_sel":
            done = {r["rule"] for r in rows}
            for u in tqdm([u for u in units if u.key not in done], desc=variant):
                edit = rewrite(lm, site, u.rule.exemplars, config=cf, stats=st)
                r, _ = select([u], [({"solver": "closed_form"}, edit)])
                rows += [{**x, "variant": variant, "budget": cfg.budget} for x in r]
                _write(path, rows)
        elif variant == "batch_sel" and not rows:
            edits = [({"norm_weight": nw}, rewrite_rules(lm, [u.rule for u in units], site, stats=st, solver="linear", norm_weight=nw))
                     for nw in SEL_NORM_WEIGHTS]
            r, grid = select(units, edits)
            _write(out / "batch_sel_grid.csv", grid)
            rows = [{**x, "variant": variant, "budget": cfg.budget} for x in r]
            _write(path, rows)
        elif variant == "finetune_sel":
            # the baseline row: each fine-tuning method (and PAINT) on all rules' exemplars at once, through the shared
            # harness cell (eval/cell.py: the edit made once, PAINT's alphas walked there), its setting (lr, steps, alpha)
            # selected as batch_sel's within the budget on the validation halves
            from modeledit.eval.cell import CellExemplars, run_cell
            from modeledit.eval.methods import method_settings

            done = {r["method"] for r in rows}
            names = lm.class_names
            ex = [u.rule.exemplars for u in units]
            cell_ex = CellExemplars(torch.cat([e.x for e in ex]), torch.cat([e.x_prime for e in ex]),
                                    torch.cat([e.mask[:, 0] for e in ex]) > 0.5,
                                    [_target_index(u, names) for u, e in zip(units, ex) for _ in range(len(e.x))])
            cache = runner.cache               # the bench's per-worker cell cache (statistics per site)

            def measure(_sites: Sequence[Any]) -> dict[str, Any]:
                g, split = measured(units)
                return {**g, "_split": split}

            for method in tqdm([m for m in FINETUNE_METHODS if m not in done], desc=variant):
                cells = [r for setting in method_settings(cfg.bench, method)
                         for r in run_cell(cache, {"method": method, "site": cfg.site, "setting": setting}, cell_ex, cfg.bench, {}, measure)]
                settings = [({k: v for k, v in r.items() if not k.startswith(("_", "edit_"))}, r["_split"], {"method": method, "setting": r["setting"]})
                            for r in cells if not r.get("diverged")]
                r, grid = choose(units, settings)
                rows += [{**x_, "variant": variant, "method": method, "budget": cfg.budget} for x_ in r]
                _write(out / f"finetune_sel_grid_{method}.csv", grid)
                _write(path, rows)
        elif variant == "keep_grid":
            # the preserved sequence's settings: each rule's objective gain kept at the end (objective retention), the
            # correction at the end on its test images, the clean change at the end and the largest objective met
            from modeledit.editor import site_objective
            from modeledit.rules import NORM_WEIGHT

            done = {(r["form"], r["norm_weight"], r["past_weight"], bool(r["keep_train"])) for r in rows}
            for form, nw, pw, kt in tqdm([g for g in KEEP_GRID if g not in done], desc=variant):
                t1 = time.perf_counter()
                seq = RuleSequence(lm, site, stats=st, preserve=True, keep=st if kt else None, keep_threshold=keep_thr,
                                   form=form, norm_weight=nw, past_weight=pw)
                for u in order:
                    seq.add(u.rule)
                with torch.no_grad():
                    with seq.base.restored(lm.model):
                        base_obj = [float(site_objective(lm.model, site, k.tensors)) for k in seq.rules]
                    with seq.applied():
                        end_obj = [float(site_objective(lm.model, site, k.tensors)) for k in seq.rules]
                        end = [ev.rule_row(u.key)["corrected"] for u in order]
                        clean = ev.clean_row()
                own = [e.metrics["objective_after"] for e in seq.edits.edits]
                ret = [(b - e) / (b - o) if b - o > 1e-12 else float("nan") for b, e, o in zip(base_obj, end_obj, own)]
                rows.append({**base, "variant": variant, "form": form, "norm_weight": nw, "past_weight": pw, "keep_train": kt,
                             "n_rules": len(order), "objective_retention_mean": float(np.nanmean(ret)),
                             "objective_retention_min": float(np.nanmin(ret)),
                             "objective_gain_own_step_mean": float(np.mean([b - o for b, o in zip(base_obj, own)])),
                             "max_objective_before_step": max(e.metrics["objective_before"] for e in seq.edits.edits),
                             "corrected_end_mean": float(np.nanmean(end)), **clean, "seconds": time.perf_counter() - t1})
                _write(path, rows)
        elif variant == "sequence_grid":
            rows = _sequence_grid(lm, site, st, order, ev, runner, rows, path, base, unit_meta, keep_thr)
        elif variant == "stress":
            rows = _stress(lm, site, st, units, ev, cfg, rows, path, base)
        elif variant == "sites":
            from modeledit.rules import rank_sites

            done = {r["rule"] for r in rows}
            cx, cy, _ = runner.clean_set()
            rank_in_pair = {u.key: [v.key for v in units if v.pair == u.pair].index(u.key) for u in units}
            todo = [u for u in units if u.key not in done and (cfg.sites_per_pair is None or rank_in_pair[u.key] < cfg.sites_per_pair)]
            for u in tqdm(todo, desc=variant):
                vi, ti = (torch.as_tensor(i) for i in ev.halves(u.key))      # val / test: random halves of the unit's test images
                ranking = rank_sites(lm, u.rule, clean=(cx, cy.numpy()), val=(u.test[0][vi], u.test[1][vi], u.test[2][vi.numpy()]),
                                     test=(u.test[0][ti], u.test[1][ti], u.test[2][ti.numpy()]), stats=runner.statistics,
                                     budget=cfg.bench.protocol.max_clean_drop)
                best_test = max(r["test_corrected"] for r in ranking if r["test_corrected"] == r["test_corrected"])
                for r in ranking:
                    rows.append({**unit_meta(u), "variant": variant, **{k: v for k, v in r.items() if k not in ("tried", "site")},
                                 "site_name": r["site"], "best_test_corrected": best_test,
                                 "recommended_within_5pp": ranking[0]["test_corrected"] >= best_test - 0.05})
                _write(path, rows)
    summary = summarize(out)
    run.update(status="finished", seconds=time.perf_counter() - t0)
    write_json_atomic(manifest_path, {**json.loads(manifest_path.read_text()), "status": "finished", "runs": [*runs, run],
                                      "seconds_this_run": time.perf_counter() - t0})
    return summary


def _setting_tag(form: str, nw: float, pw: float, mode: str) -> str:
    return f"{form}_nw{nw:g}_pw{pw:g}_{mode}"


def _sequence_grid(lm: Any, site: Any, st: Any, order: Sequence[Unit], ev: "_Evaluator", runner: Any, rows: list[dict[str, Any]],
                   path: Path, base: dict[str, Any], unit_meta: Any, keep_thr: float) -> list[dict[str, Any]]:
    """Every :data:`SEQUENCE_GRID` setting as a preserved sequence of all rules, measured after every step on each rule's
    validation half and test half (``sequence_grid_<tag>_steps.csv``); one summary row per setting in ``sequence_grid.csv``
    and the setting chosen on validation (``sequence_grid_choice.json``, rule: :data:`RETAINED_SHARE`)."""
    from modeledit.atomic import write_json_atomic
    from modeledit.progress import tqdm
    from modeledit.rules import RuleSequence, measure_sequence

    out = path.parent
    done = {r["setting"] for r in rows}
    clean = (runner.clean_set()[0], runner.clean_set()[1].numpy())
    for form, nw, pw, mode in tqdm([g for g in SEQUENCE_GRID if _setting_tag(*g) not in done], desc="sequence_grid"):
        tag = _setting_tag(form, nw, pw, mode)
        t1 = time.perf_counter()
        seq = RuleSequence(lm, site, stats=st, preserve=True, keep_threshold=keep_thr, form=form, norm_weight=nw,
                           past_weight=pw, past_mode=mode)
        for u in order:
            seq.add(u.rule)
        steps = []
        for half, idx in (("val", 0), ("test", 1)):
            tests = {}
            for u in order:
                i = torch.as_tensor(ev.halves(u.key)[idx])
                tests[u.key] = (u.test[0][i], u.test[1][i], u.test[2][i.numpy()])
            for s in measure_sequence(seq, tests, clean=clean if half == "test" else None, progress=False):
                steps.append({**unit_meta(next(u for u in order if u.key == s["rule"])), "setting": tag, "half": half, **s})
        _write(out / f"sequence_grid_{tag}_steps.csv", steps)
        row = {**base, "variant": "sequence_grid", "setting": tag, "form": form, "norm_weight": nw, "past_weight": pw, "past_mode": mode,
               "n_rules": len(order), "max_objective_before_step": max(e.metrics["objective_before"] for e in seq.edits.edits),
               "seconds": time.perf_counter() - t1}
        last = len(order) - 1
        for half in ("val", "test"):
            t = pd.DataFrame([s for s in steps if s["half"] == half])
            own = t[t.apply(lambda r: order[int(r["step"])].key == r["rule"], axis=1)].set_index("rule")["corrected"]
            end = t[t["step"] == last].set_index("rule")
            fixed = own[own > 0].index
            ret = end.loc[fixed, "corrected"] / own[fixed]
            row.update({f"{half}_own_step_mean": float(own.mean()), f"{half}_end_mean": float(end["corrected"].mean()),
                        f"{half}_n_fixed": int(len(fixed)), f"{half}_n_retained_90": int((ret >= 0.9).sum()),
                        f"{half}_retention_min": float(ret.min()) if len(ret) else float("nan"),
                        f"{half}_retention_median": float(ret.median()) if len(ret) else float("nan")})
            if half == "test":
                row.update({"clean_acc_change": float(end["clean_acc_change"].iloc[0]), "clean_changed": float(end["clean_changed"].iloc[0])})
        rows.append(row)
        _write(path, rows)
    ok = [r for r in rows if r["val_n_fixed"] and r["val_n_retained_90"] >= RETAINED_SHARE * r["val_n_fixed"]]
    best = max(ok, key=lambda r: r["val_end_mean"]) if ok else None
    write_json_atomic(out / "sequence_grid_choice.json", {
        "rule": f"most validation errors corrected at the end among settings where >= {RETAINED_SHARE:.0%} of the rules whose own "
                "step fixed something keep >= 90% of it (validation halves)",
        "chosen": None if best is None else best["setting"], "qualifying": [r["setting"] for r in ok]})
    return rows


def mean_over_pairs(x: np.ndarray, pairs: Sequence[str], name: str, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """The mean of per-rule values ``x`` as ``name``, ``name_lo``/``name_hi`` (a 95% bootstrap interval resampling the
    concept-style ``pairs``: the rules of one pair are not independent) and ``n``."""
    from modeledit.eval.intervals import draw_units

    if not len(x):
        return {name: float("nan"), f"{name}_lo": float("nan"), f"{name}_hi": float("nan"), "n": 0}
    idx = draw_units(np.random.default_rng(seed), n_boot, len(x), list(pairs))
    boots = np.nanmean(np.where(idx >= 0, x[np.clip(idx, 0, None)], np.nan), 1)
    return {name: float(x.mean()), f"{name}_lo": float(np.percentile(boots, 2.5)), f"{name}_hi": float(np.percentile(boots, 97.5)),
            "n": int(len(x))}


def paired_over_pairs(a: pd.DataFrame, b: pd.DataFrame, col: str = "corrected", n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean over rules of b[col] - a[col] (paired by rule), with a 95% bootstrap interval resampling concept-style pairs."""
    m = a[["rule", "pair", col]].merge(b[["rule", col]], on="rule", suffixes=("_a", "_b")).dropna()
    return mean_over_pairs((m[f"{col}_b"] - m[f"{col}_a"]).to_numpy(), m["pair"], "diff", n_boot, seed)


def share_over_pairs(t: pd.DataFrame, col: str, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """The share of rules (rows) where the boolean ``col`` holds, with a pair-resampled 95% interval."""
    return mean_over_pairs(t[col].astype(float).to_numpy(), t["pair"], "share", n_boot, seed)


def summarize_sites(t: pd.DataFrame) -> list[dict[str, Any]]:
    """Where to edit (goal c), from ``sites.csv`` (one row per rule x site, ``rank`` 1 = recommended on the validation
    half): how often the recommended site's test correction is within 5 pp of the best site's, and the same for always
    editing the deepest site, each with a pair-resampled interval; and how often each site is recommended / best."""
    rows = []
    per_rule = []
    for rule, g in t.groupby("rule", sort=False):
        rec = g[g["rank"] == 1].iloc[0]
        deep = g[g["site_index"] == g["site_index"].max()].iloc[0]
        best = g.loc[g["test_corrected"].idxmax()]
        per_rule.append({"rule": rule, "pair": rec["pair"], "recommended": bool(rec["test_corrected"] >= rec["best_test_corrected"] - 0.05),
                         "deepest": bool(deep["test_corrected"] >= rec["best_test_corrected"] - 0.05),
                         "recommended_site": rec["site_name"], "best_site": best["site_name"]})
    r = pd.DataFrame(per_rule)
    for label, col in (("sites_recommended", "recommended"), ("sites_deepest", "deepest")):
        row = {"variant": label, "n_rules": int(len(r)), "n_pairs": int(r["pair"].nunique()), "within_5pp": int(r[col].sum())}
        row.update({f"within_5pp_{k}": v for k, v in share_over_pairs(r, col).items() if k != "n"})
        if col == "recommended":
            row["recommended_sites"] = "; ".join(f"{k} {v}" for k, v in r["recommended_site"].value_counts().items())
            row["best_sites"] = "; ".join(f"{k} {v}" for k, v in r["best_site"].value_counts().items())
        rows.append(row)
    return rows


def _clean_means(variant: str, g: pd.DataFrame) -> dict[str, float]:
    """The clean change of a variant: per edit, averaged over its edits (single: one per rule; per_pair: one per pair;
    a batch or a finished sequence: one edit for all rules)."""
    edits = g if variant in ("single", "single_linear", "single_sel") else (g.drop_duplicates("pair") if variant == "per_pair" else g.iloc[:1])
    return {"clean_acc_change_mean": float(edits["clean_acc_change"].mean()), "clean_changed_mean": float(edits["clean_changed"].mean()),
            "n_edits": int(len(edits))}


def summarize(out_dir: str | Path) -> Path:
    """``summary.csv``: per variant, the mean correction and clean change, and the paired difference to ``single``."""
    out = Path(out_dir)
    tables = {p.stem: pd.read_csv(p) for p in sorted(out.glob("*.csv")) if p.stem in VARIANTS and p.stem not in ("sites", "keep_grid", "sequence_grid", "stress")}
    rows = []
    single = tables.get("single")
    selected = tables.get("single_sel")
    for name, t in tables.items():
        groups = ([(f"batch_k{k}", g) for k, g in t.groupby("k")] if name == "batch_k" else
                  [(f"finetune_sel_{m}", g) for m, g in t.groupby("method")] if name == "finetune_sel" else [(name, t)])
        for label, g in groups:
            row = {"variant": label, "n_rules": int(len(g)), "corrected_mean": float(g["corrected"].mean()),
                   **_clean_means(name, g)}
            if "retention" in g:
                row["retention_mean"] = float(g["retention"].mean())
            # selected variants (within the clean budget, test half) against single_sel, the rest against single (full strength)
            ref, ref_name = (selected, "single_sel") if name in ("batch_sel", "batch_k", "finetune_sel") else (single, "single")
            if ref is not None and label != ref_name:
                row["reference"] = ref_name
                row.update({f"vs_single_{k}": v for k, v in paired_over_pairs(ref, g).items()})
                row["fraction_of_single"] = row["corrected_mean"] / float(ref[ref["rule"].isin(g["rule"])]["corrected"].mean())
            if name == "finetune_sel" and "batch_sel" in tables:    # the baseline row against the one joint rewrite
                row.update({f"batch_sel_minus_{k}": v for k, v in paired_over_pairs(g, tables["batch_sel"]).items()})
            rows.append(row)
    if (out / "sites.csv").is_file():
        rows += summarize_sites(pd.read_csv(out / "sites.csv"))
    path = out / "summary.csv"
    from modeledit.atomic import write_text_atomic

    write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def write_figures(out_dir: str | Path) -> list[Path]:
    """Correction vs number of rules (batch_k, with single as reference) and the retention curve over the sequences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    made = []
    if (out / "batch_k.csv").is_file():
        t = pd.read_csv(out / "batch_k.csv")
        g = t.groupby("k")["corrected"].mean()
        fig, ax = plt.subplots(figsize=(5, 3.4))
        sel = "budget" in t
        ax.plot(g.index, g.values, "o-", label="one joint solve (linear" + (", selected within the clean budget)" if sel else ")"))
        ref_path = out / ("single_sel.csv" if sel else "single.csv")
        if ref_path.is_file():
            s = pd.read_csv(ref_path)
            ref = [s[s["rule"].isin(t[t["k"] == k]["rule"])]["corrected"].mean() for k in g.index]
            ax.plot(g.index, ref, "s--", label="each rule alone (closed form" + (", selected)" if sel else ")"))
        ax.set_xscale("log")
        ax.set_xlabel("rules in the solve")
        ax.set_ylabel("mean errors corrected (test" + (" half)" if sel else ")"))
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(figs / "correction_vs_rules.png")
        fig.savefig(made[-1], dpi=120)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    any_seq = False
    for v in ("sequence", "sequence_keep", "sequence_keep_directions"):
        p = out / f"{v}_steps.csv"
        if p.is_file():
            t = pd.read_csv(p)
            g = t.groupby("step")["corrected"].mean()
            line, = ax.plot(g.index + 1, g.values, label=f"{v}: mean correction of rules so far")
            if "clean_acc_change" in t:
                c = t.groupby("step")["clean_acc_change"].first()
                ax.plot(c.index + 1, c.values, "--", color=line.get_color(), label=f"{v}: clean accuracy change")
            any_seq = True
    if (out / "stress.csv").is_file():
        t = pd.read_csv(out / "stress.csv")
        for name, g in t.groupby("setting"):
            line, = ax.plot(g["step"], g["corrected_mean"], label=f"stress {name}: mean correction of the units so far")
            ax.plot(g["step"], g["clean_acc_change"], "--", color=line.get_color(), label=f"stress {name}: clean accuracy change")
        any_seq = True
    if any_seq:
        ax.set_xlabel("rules added")
        ax.set_ylabel("errors corrected (test) / clean change")
        ax.legend(fontsize=7)
        fig.tight_layout()
        made.append(figs / "sequence_retention.png")
        fig.savefig(made[-1], dpi=120)
    plt.close(fig)
    return made
