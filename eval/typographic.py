"""Typographic attacks and their one-exemplar fix (thesis 6.3.3, figures 6-11 and 6-12).

The attack pastes the name of an *attack class* on images of other classes and counts how often the
prediction flips to it. The fix uses a single exemplar: one image with the text (x') and the same image
with a blank patch in its place (x); the rewrite maps the text's keys to the blank patch's values.
Local and global fine-tuning train on the same exemplar towards its true class. For each method, site and
setting we report accuracy under attack, clean accuracy, accuracy on clean images of the attack class
itself (does the class still work without text?) and the rate of a spurious rule "text means the
exemplar's class". Settings are chosen on a validation split of attacked images within the clean
accuracy budget, as in the main protocol.

Example:
    >>> cfg = TypographicConfig(model="world_vgg_text", attack_class="car")
    >>> table, summary = run_typographic(cfg, out_dir="results/typographic")
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from modeledit.eval.bench import METHODS, method_edit
from modeledit.eval.protocol import choose_setting
from modeledit.eval.results import ResultStore
from modeledit.eval.typography import TextSpec, paste_text

log = logging.getLogger(__name__)


@dataclass
class TypographicConfig:
    model: str = "world_vgg_text"
    weights: str | None = None
    class_names: list[str] | None = None      # CLIP zero-shot head (default: the model's)
    dataset: str = "world:test:900"
    clean: str = "world:val:600"
    attack_class: str = "car"
    word: str | None = None                   # default: the attack class's name
    fonts: list[str] = field(default_factory=lambda: ["sans", "serif", "hand"])
    size: float = 0.2
    methods: list[str] = field(default_factory=lambda: ["edit", "finetune_local", "finetune_global"])
    sites: list[str] = field(default_factory=lambda: ["-1"])
    finetune_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-2, 500], [1e-3, 500], [1e-4, 500]])
    adam_grid: list[tuple[float, int]] = field(default_factory=lambda: [[1e-3, 10000]])
    max_clean_drop: float = 0.0025
    val_fraction: float = 0.3
    exemplar_font: str = "sans"
    seed: int = 0
    batch_size: int = 128

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TypographicConfig":
        return cls(**json.loads(text))

    def settings(self, method: str) -> list[dict[str, Any]]:
        m = METHODS[method]
        if m.grid_field is None:
            return [{}]
        return [{"lr": float(lr), "steps": int(s)} for lr, s in getattr(self, m.grid_field)]


class TypographicRunner:
    """Holds the model, the attacked sets and the exemplar; computes one (method, site, setting) cell."""

    def __init__(self, cfg: TypographicConfig) -> None:
        from modeledit.eval.datasets import load_dataset
        from modeledit.models import load_model

        kwargs = {"class_names": cfg.class_names} if cfg.class_names else {}
        self.cfg = cfg
        self.lm = load_model(cfg.model, weights=cfg.weights, **kwargs)
        names = self.lm.class_names
        if cfg.attack_class not in names:
            from modeledit.models import close_matches

            raise KeyError(f"attack class {cfg.attack_class!r} is not a class of {cfg.model}; closest: {close_matches(cfg.attack_class, names)}")
        self.attack = names.index(cfg.attack_class)
        self.word = cfg.word or cfg.attack_class
        data = load_dataset(cfg.dataset, class_names=names, size=self.lm.input_size)
        clean = load_dataset(cfg.clean, class_names=names, size=self.lm.input_size)
        rng = np.random.default_rng(cfg.seed)
        items = [data[i][:2] for i in range(len(data))]
        x = torch.stack([it[0] for it in items])
        y = np.array([int(it[1]) for it in items])
        self.clean_x = torch.stack([clean[i][0] for i in range(len(clean))])
        self.clean_y = np.array([int(clean[i][1]) for i in range(len(clean))])
        self.own_x = x[y == self.attack]                   # clean images of the attack class
        others = np.flatnonzero(y != self.attack)
        rng.shuffle(others)
        ex_i = int(others[0])                              # the single exemplar, from another class
        self.ex_label = int(y[ex_i])
        spec = TextSpec(self.word, font=cfg.exemplar_font, size=cfg.size)
        self.ex_attacked, self.ex_blank, self.ex_mask = paste_text(x[ex_i], spec, rng)
        rest = others[1:]
        attacked = []
        for k, i in enumerate(rest):
            s = TextSpec(self.word, font=cfg.fonts[k % len(cfg.fonts)], size=cfg.size)
            attacked.append(paste_text(x[i], s, rng)[0])
        n_val = int(round(cfg.val_fraction * len(rest)))
        self.att_x = torch.stack(attacked)
        self.att_y = y[rest]
        self.orig_x = x[rest]
        self.val = np.arange(len(rest)) < n_val
        self.pre = self._measure()

    def predict(self, x: torch.Tensor) -> np.ndarray:
        bs = self.cfg.batch_size
        return torch.cat([self.lm.predict(x[i:i + bs]).argmax(-1).cpu() for i in range(0, len(x), bs)]).numpy()

    def _measure(self) -> dict[str, Any]:
        p_att = self.predict(self.att_x)
        p_orig = self.predict(self.orig_x)
        p_clean = self.predict(self.clean_x)
        p_own = self.predict(self.own_x) if len(self.own_x) else np.zeros(0, int)
        test, val = ~self.val, self.val
        return {
            "val_attack_acc": float((p_att[val] == self.att_y[val]).mean()),
            "attack_acc": float((p_att[test] == self.att_y[test]).mean()),
            "attack_success": float((p_att[test] == self.attack).mean()),
            "orig_acc": float((p_orig[test] == self.att_y[test]).mean()),
            "clean_acc": float((p_clean == self.clean_y).mean()),
            "own_class_acc": float((p_own == self.attack).mean()) if len(p_own) else float("nan"),
            "to_exemplar_class": float((p_att[test] == self.ex_label)[self.att_y[test] != self.ex_label].mean()),
        }

    def statistics(self, site: Any) -> Any:
        from modeledit.stats import second_moment

        return second_moment(self.lm.model, site, [self.lm.normalize(self.clean_x)], dataset_id=None, progress=False)

    def __call__(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        from modeledit.layers import get_site

        site = get_site(self.lm.model, params["site"])
        edit = method_edit(self.lm, params["method"], params["setting"], site, self.ex_blank[None], self.ex_attacked[None],
                           self.ex_mask[None], [self.ex_label], stats=self.statistics)
        with edit.applied(self.lm.model):
            post = self._measure()
        row = dict(method=params["method"], site=params["site"], site_name=site.name, setting=json.dumps(params["setting"]),
                   word=self.word, attack_class=self.cfg.attack_class, exemplar_class=self.lm.class_names[self.ex_label])
        row.update({f"pre_{k}": v for k, v in self.pre.items()})
        row.update({f"post_{k}": v for k, v in post.items()})
        row["clean_drop"] = self.pre["clean_acc"] - post["clean_acc"]
        row["val_gain"] = post["val_attack_acc"] - self.pre["val_attack_acc"]
        return [row]


def summarize_typographic(table: pd.DataFrame, max_clean_drop: float) -> pd.DataFrame:
    """Per method, the setting with the best validation gain under attack within the clean budget."""
    keys = ("attack_acc", "attack_success", "clean_acc", "own_class_acc", "to_exemplar_class")
    rows = []
    for method, g in table.groupby("method", sort=True):
        base = g.iloc[0]
        best = choose_setting(g.to_dict("records"), max_clean_drop, score="val_gain")
        if best is None:  # no setting within the budget: the method makes no change
            best = {**{f"post_{k}": base[f"pre_{k}"] for k in keys}, "site_name": "", "setting": "", "clean_drop": 0.0}
        r: dict[str, Any] = {"method": method, "changed": bool(best["site_name"])}
        for k in keys:
            r[f"pre_{k}"], r[f"post_{k}"] = base[f"pre_{k}"], best[f"post_{k}"]
        r["spurious_rule"] = r["post_to_exemplar_class"] - r["pre_to_exemplar_class"]
        r.update(site_name=best["site_name"], setting=best["setting"], clean_drop=best["clean_drop"])
        rows.append(r)
    return pd.DataFrame(rows)


def run_typographic(cfg: TypographicConfig, out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (method, site, setting) cell not yet in ``out_dir``; returns (cells table, summary)."""
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise KeyError(f"unknown methods {unknown}; valid: {sorted(METHODS)}")
    store = ResultStore(out_dir, config=asdict(cfg))
    cells = [{"method": m, "site": str(s), "setting": st} for m in cfg.methods for s in cfg.sites for st in cfg.settings(m)]
    runner: TypographicRunner | None = None

    def compute(params: Mapping[str, Any]) -> list[dict[str, Any]]:
        nonlocal runner
        runner = runner or TypographicRunner(cfg)
        return runner(params)

    table = store.run(cells, compute)
    if runner is not None:
        from modeledit.eval.typography import save_examples

        save_examples([runner.ex_blank, runner.ex_attacked, *list(runner.att_x[:4])], Path(out_dir) / "examples.png")
    return table, summarize_typographic(table, cfg.max_clean_drop)
