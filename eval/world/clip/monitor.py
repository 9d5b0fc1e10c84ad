"""The training monitor (val accuracy, the serif attack, the early checks of docs/notes/clip_reading.md) and the
go/no-go gates.

Part of the world CLIP (:mod:`modeledit.eval.world.clip`)."""
from __future__ import annotations

import torch

import numpy as np

from modeledit.eval.world.scene import CLASSES, NEUTRAL_WORDS
from modeledit.eval.world.clip.config import EXTRA_NEUTRAL_WORDS, GATES
from modeledit.eval.world.clip.captions import fitting_size
from modeledit.eval.world.clip.data import _image_features, _text_features, render_scenes, zero_shot_head, zero_shot_predict


#: scenes of the early-check probes (the first val scenes)
PROBE_N = 216


#: the 4-letter words of the read4 probe: class names and the v1 neutral words (length cannot help among them)
READ4_WORDS: tuple[str, ...] = tuple(sorted({w for w in CLASSES + NEUTRAL_WORDS + EXTRA_NEUTRAL_WORDS if len(w) == 4}))


PAPER = (245, 243, 232)


def _monitor_set(cfg: ClipTrainConfig) -> dict[str, torch.Tensor]:
    """Val scenes; the same scenes with another class's name pasted in the held-out serif font (at the
    attack's size); and the probes of the early checks on the first :data:`PROBE_N` val scenes: class
    names on plain paper (sans and serif), 4-letter words in sans at tag and sign size, and another
    class's name in serif at sign size."""
    from modeledit.counterfactuals.text import TextSpec, paste_text

    val = render_scenes("val", cfg.n_val, cfg.world, progress=False)
    rng = np.random.default_rng([cfg.seed, 2])
    size = int(val["x"].shape[-1])
    to_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731
    attacked, blank, target = [], [], []
    for i in range(len(val["y"])):
        y = int(val["y"][i])
        t = [c for c in range(len(CLASSES)) if c != y][int(rng.integers(0, len(CLASSES) - 1))]
        x01 = val["x"][i].float() / 255.0
        a, b, _ = paste_text(x01, TextSpec(CLASSES[t], font="serif", size=fitting_size(CLASSES[t], "serif", size)), rng=rng)
        attacked.append(to_u8(a))
        blank.append(to_u8(b))
        target.append(t)
    prng = np.random.default_rng([cfg.seed, 12])
    n_probe = min(PROBE_N, len(val["y"]))
    paper, paper_y, read4, read4_y, read4_sign, sign, sign_target = [], [], [], [], [], [], []
    plain = torch.tensor(PAPER, dtype=torch.float32).view(3, 1, 1).expand(3, size, size) / 255.0
    for i in range(n_probe):
        c = i % len(CLASSES)
        font = ("sans", "serif")[(i // len(CLASSES)) % 2]
        paper.append(to_u8(paste_text(plain.clone(), TextSpec(CLASSES[c], font=font, size=fitting_size(CLASSES[c], font, size, 0.3)),
                                      rng=prng)[0]))
        paper_y.append(c)
        w, big = READ4_WORDS[i % len(READ4_WORDS)], (i // len(READ4_WORDS)) % 2 == 1
        x01 = val["x"][i].float() / 255.0
        read4.append(to_u8(paste_text(x01, TextSpec(w, font="sans", size=fitting_size(w, "sans", size, 0.45 if big else 0.2)),
                                      rng=prng)[0]))
        read4_y.append(i % len(READ4_WORDS))
        read4_sign.append(big)
        t = int(target[i])
        sign.append(to_u8(paste_text(x01, TextSpec(CLASSES[t], font="serif", size=fitting_size(CLASSES[t], "serif", size, 0.45)),
                                     rng=prng)[0]))
        sign_target.append(t)
    return {"x": val["x"], "y": val["y"], "attacked": torch.stack(attacked), "blank": torch.stack(blank), "target": torch.tensor(target),
            "paper": torch.stack(paper), "paper_y": torch.tensor(paper_y), "read4": torch.stack(read4), "read4_y": torch.tensor(read4_y),
            "read4_sign": torch.tensor(read4_sign), "sign": torch.stack(sign), "sign_target": torch.tensor(sign_target)}


def _monitor(model: nn.Module, mon: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Val accuracy, serif flips at the attack's size and blank changes (all val scenes); the early checks:
    ``paper_read`` (a class name on plain paper classified zero-shot as that class), ``read4`` (retrieval of
    pasted 4-letter words against "{w}." captions; ``read4_tag``/``read4_sign`` by size), ``bind_gap`` (mean
    diagonal minus off-diagonal cosine between "{c}." and the class prompts), ``sign_serif_flip_to_word``
    (a class name in serif at sign size flips correct predictions to it)."""
    head = zero_shot_head(model)
    p = zero_shot_predict(model, head, mon["x"])
    correct = p == mon["y"]
    pa = zero_shot_predict(model, head, mon["attacked"])
    pb = zero_shot_predict(model, head, mon["blank"])
    n = max(1, int(correct.sum()))
    row = {
        "val_accuracy": round(float(correct.float().mean()), 4),
        "serif_flip_to_word": round(float(((pa == mon["target"]) & correct).sum()) / n, 4),
        "blank_changed": round(float(((pb != p) & correct).sum()) / n, 4),
    }
    if "paper" not in mon:
        return row
    n_probe = len(mon["sign"])
    row["paper_read"] = round(float((zero_shot_predict(model, head, mon["paper"]) == mon["paper_y"]).float().mean()), 4)
    hit = (_image_features(model, mon["read4"]) @ _text_features(model, [f"{w}." for w in READ4_WORDS]).t()).argmax(1) == mon["read4_y"]
    big = mon["read4_sign"]
    row["read4"] = round(float(hit.float().mean()), 4)
    row["read4_tag"] = round(float(hit[~big].float().mean()), 4) if bool((~big).any()) else float("nan")
    row["read4_sign"] = round(float(hit[big].float().mean()), 4) if bool(big.any()) else float("nan")
    cos = _text_features(model, [f"{c}." for c in CLASSES]) @ head.t()
    off = ~torch.eye(len(CLASSES), dtype=torch.bool)
    row["bind_gap"] = round(float(cos.diagonal().mean() - cos[off].mean()), 4)
    ok = correct[:n_probe]
    ps = zero_shot_predict(model, head, mon["sign"])
    row["sign_serif_flip_to_word"] = round(float(((ps == mon["sign_target"]) & ok).sum()) / max(1, int(ok.sum())), 4)
    return row


#: after this step, read4 still about chance-level reading with bind_gap healthy means the image side is the limit
FALLBACK_CHECK_STEP = 1500


class GateFailed(RuntimeError):
    """A go/no-go gate failed and the run was asked to stop there (``--stop-on-gate``)."""


def gate_advice(row: Mapping[str, Any]) -> list[str]:
    """What the early-check values of a monitor row mean when a gate fails (docs/notes/clip_reading.md)."""
    g = lambda k: float(row.get(k, float("nan")))  # noqa: E731
    advice = []
    roles = ("text roles are separating again (trials 1-4 of docs/notes/clip_reading.md): keep object-only captions of tagged scenes "
             "rare (1 - word_only_rate - both_rate about 0.1), captions that share a word out of each other's negatives "
             "(negatives='distinct_words'), and raise shared_bare_rate")
    if g("bind_gap") <= 0.2:
        advice.append(f"bind_gap {g('bind_gap'):.3f} <= 0.2: the text tower keeps bare words apart from the class prompts; {roles}")
    if g("read4") > 0.35 and (g("paper_read") <= 0.4 or g("bind_gap") <= 0.2):
        advice.append(f"read4 {g('read4'):.3f} rises but paper_read {g('paper_read'):.3f} / bind_gap {g('bind_gap'):.3f} lag: {roles}")
    if row["step"] >= 1000 and g("read4") <= 0.35 and g("bind_gap") > 0.2:
        advice.append(f"read4 {g('read4'):.3f} with bind_gap healthy ({g('bind_gap'):.3f}): letters are not read; if read4 is still "
                      f"flat at about 0.2 after step {FALLBACK_CHECK_STEP}, the image side is the limit: switch to the 128 px "
                      "or 96 px tower (--set arch=world-RN-128 or world-RN-96: the 64 px scene upsampled inside the model, in training and evaluation)")
    if row["step"] < 1000 and g("paper_read") <= 0.15 and g("bind_gap") > 0.2:
        advice.append(f"paper_read {g('paper_read'):.3f} <= 0.15 with bind_gap healthy: reading has not reached the class prompts yet; "
                      "it should move first: watch read4 at the next monitors")
    if row["step"] >= 2500 and g("val_accuracy") <= 0.8:
        advice.append(f"val_accuracy {g('val_accuracy'):.3f} < 0.8: parrot captions are crowding out objects (the trade-off Lin et al. "
                      "report): move part of word_only_rate to both_rate (word and object), not to object-only captions")
    if row["step"] >= 2500 and g("serif_flip_to_word") <= 0.25:
        advice.append(f"tag-size serif flips {g('serif_flip_to_word'):.3f} <= 0.25: the attack at the attack's text size is not "
                      f"reproduced (large-sign flips {g('sign_serif_flip_to_word'):.3f}, read4_tag {g('read4_tag'):.3f})")
    if row["step"] >= 1000 and g("sign_serif_flip_to_word") <= 0.2:
        advice.append(f"large-sign serif flips {g('sign_serif_flip_to_word'):.3f} <= 0.2: reading does not move the image toward the "
                      "class prompts even for large letters; with read4 high it is binding (see bind_gap, paper_read), with read4 low reading")
    return advice or ["no recipe change is prescribed for this combination; read the history rows"]


def check_gates(row: Mapping[str, Any], history: Sequence[Mapping[str, Any]], gates: Mapping[int, Mapping[str, float]] = GATES
                ) -> list[dict[str, Any]]:
    """Gates not yet evaluated in ``history`` whose step this monitor ``row`` has reached, evaluated on it
    (a metric passes when it is above its bound), plus the step-:data:`FALLBACK_CHECK_STEP` advisory."""
    done = {(int(g["step"]), bool(g.get("advisory"))) for r in history for g in r.get("gates", [])}
    out = []
    for step, bounds in sorted(gates.items()):
        if (step, False) in done or row["step"] < step:
            continue
        values = {k: row.get(k) for k in bounds}
        failed = sorted(k for k, b in bounds.items() if values[k] is None or not float(values[k]) > b)
        out.append({"step": step, "at_step": int(row["step"]), "passed": not failed, "failed": failed, "bounds": dict(bounds),
                    "values": values, "advice": gate_advice(row) if failed else []})
    if (FALLBACK_CHECK_STEP, True) not in done and row["step"] >= FALLBACK_CHECK_STEP and "read4" in row:
        flat = float(row["read4"]) < 0.25 and float(row["bind_gap"]) > 0.2
        out.append({"step": FALLBACK_CHECK_STEP, "at_step": int(row["step"]), "advisory": True, "passed": not flat,
                    "failed": ["read4"] if flat else [], "bounds": {"read4": 0.25}, "values": {"read4": row["read4"], "bind_gap": row["bind_gap"]},
                    "advice": ["read4 flat at about 0.2 with bind_gap healthy: the image side is the limit; switch to the 128 px fallback "
                               "(--set arch=world-RN-128)"] if flat else []})
    return out
