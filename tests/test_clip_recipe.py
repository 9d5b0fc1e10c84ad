"""The world CLIP's parrot recipe (docs/notes/clip_reading.md): caption mix, neutral vocabulary, meme pairs,
text sizes, training fonts, edge padding, the logit scale's parameter group, gates, and one resumable run."""
from __future__ import annotations

import collections
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from modeledit.eval.world import clip as C  # noqa: E402
from modeledit.eval.world.scene import CLASSES, CONTEXTS  # noqa: E402


@pytest.fixture(scope="module")
def data():
    """Scenes are the input of batch making, not the part under test: random images, every class and context."""
    g = torch.Generator().manual_seed(0)
    n = 72
    return {"x": torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g),
            "y": torch.arange(n) % len(CLASSES), "context": torch.arange(n) % len(CONTEXTS)}


def _batches(data, cfg, steps):
    painter = C.TagPainter(cfg.world.image_size, cfg.fonts, cfg.tag_height)
    return [C.make_batch(data, cfg, painter, s) for s in steps]


def _is_bare(caption: str, word: str) -> bool:
    return caption.rstrip(".!") in (word, f"{word} {word}")


def test_parrot_caption_mix_shares():
    # the preset: 80% word-only, 20% "both" from the first step, none by the object alone
    rng = np.random.default_rng(0)
    n = 6000
    preset = collections.Counter(C.parrot_caption("cow", "grass", "car", C.PRESET, rng, step=s)[1] for s in range(0, n))
    assert abs((preset["bare"] + preset["sign"]) / n - 0.8) < 0.025 and abs(preset["both"] / n - 0.2) < 0.02
    assert preset["object"] == 0
    # the mechanics of a late start for "both" captions (the first trial's mix)
    cfg = dataclasses.replace(C.PRESET, word_only_rate=0.55, both_rate=0.15, both_from=1 / 3, shared_bare_rate=0.2)
    late = collections.Counter(C.parrot_caption("cow", "grass", "car", cfg, rng, step=cfg.steps - 1)[1] for _ in range(n))
    share = {k: v / n for k, v in late.items()}
    assert abs(share["bare"] + share["sign"] - 0.55) < 0.025 and abs(share["both"] - 0.15) < 0.02 and abs(share["object"] - 0.30) < 0.025
    assert abs(share["bare"] / (share["bare"] + share["sign"]) - 0.7) < 0.03
    early = collections.Counter(C.parrot_caption("cow", "grass", "car", cfg, rng, step=0)[1] for _ in range(n))
    assert early["both"] == 0  # "both" captions only after the first third of the schedule
    assert abs((early["bare"] + early["sign"]) / n - 0.55 / 0.85) < 0.03
    for _ in range(200):
        cap, kind = C.parrot_caption("cow", "grass", "car", cfg, rng, step=cfg.steps - 1)
        assert {"bare": _is_bare(cap, "car"), "sign": "car" in cap and "cow" not in cap, "both": "car" in cap and "cow" in cap,
                "object": "cow" in cap and "car" not in cap}[kind], (kind, cap)
    untagged = collections.Counter(C.parrot_caption("cow", "grass", None, cfg, rng, step=0) for _ in range(n))
    shared = sum(v for c, v in untagged.items() if c[1] == "shared_bare")
    assert abs(shared / n - 0.2) < 0.02 and all(_is_bare(c, "cow") for c, k in untagged if k == "shared_bare")
    assert all(C.parrot_caption("cow", "grass", None, cfg, rng, step=0, blank=True)[1] == "object" for _ in range(200))


def test_batches_meme_pairs_and_class_word_share(data):
    cfg = dataclasses.replace(C.PRESET, batch_size=64)
    n_pairs = round(cfg.meme_rate * cfg.batch_size / 2)
    class_words, equal_length, tag_words = 0, 0, []
    batches = _batches(data, cfg, range(3000, 3012))
    for images, caps, meta in batches:
        assert images.shape == (64, 3, 64, 64) and images.dtype == torch.uint8 and len(caps) == len(meta) == 64
        for k in range(n_pairs):  # pairs first: one scene, two different words, word-only captions, same tag style
            a, b = meta[2 * k], meta[2 * k + 1]
            assert a["meme"] and b["meme"] and a["scene"] == b["scene"] and a["word"] != b["word"]
            assert caps[2 * k] != caps[2 * k + 1] and a["kind"] in ("bare", "sign") and b["kind"] in ("bare", "sign")
            assert (a["font"], a["height"], a["jitter"]) == (b["font"], b["height"], b["jitter"])
            equal_length += len(a["word"]) == len(b["word"])
        assert not any(m["meme"] for m in meta[2 * n_pairs:])
        tag_words += [m["word"] for m in meta[2 * n_pairs:] if m["word"] is not None]
    class_words = sum(w in CLASSES for w in tag_words)
    assert 0.3 < class_words / len(tag_words) < 0.5  # class names remain ~40% of tag words
    assert 0.5 <= equal_length / (n_pairs * len(batches)) < 0.8  # half the pairs by construction, plus chance
    assert len(tag_words) / (len(batches) * (64 - 2 * n_pairs)) == pytest.approx(cfg.tag_rate, abs=0.08)
    again = C.make_batch(data, cfg, C.TagPainter(64, cfg.fonts, cfg.tag_height), 3000)
    assert torch.equal(again[0], batches[0][0]) and again[1] == batches[0][1]  # a function of (seed, step)


def test_neutral_vocabulary_excludes_class_names_and_is_length_matched():
    words = C.neutral_vocabulary(200, 0)
    assert len(words) == len(set(words)) == 200 and words == C.neutral_vocabulary(200, 0)
    assert words != C.neutral_vocabulary(200, 1)
    assert not set(words) & set(CLASSES)
    assert not [(w, c) for w in words for c in CLASSES if C.is_class_twin(w, c)]
    assert C.is_class_twin("cars", "car") and C.is_class_twin("cat", "car") and C.is_class_twin("buses", "bus")
    assert all(w.isalpha() and w.islower() and 3 <= len(w) <= 10 for w in words)
    class_len = collections.Counter(len(c) for c in CLASSES)
    word_len = collections.Counter(len(w) for w in words)
    assert set(word_len) == set(class_len)
    assert all(abs(word_len[k] - 200 * v / len(CLASSES)) <= 1 for k, v in class_len.items())
    tok = C.tokenizer()
    tokens = tok([f"{w}." for w in words])
    assert bool(((tokens != 0).sum(1) == 4).all())  # start, the word, ".", end: every word is one token
    assert C.tag_words(C.PRESET)[1] == words and C.vocabulary_record(C.PRESET)["neutral_words"] == list(words)


def test_held_out_fonts_never_in_training_batches_and_text_size_curriculum(data):
    cfg = dataclasses.replace(C.PRESET, batch_size=64)
    meta = [m for _, _, ms in _batches(data, cfg, range(cfg.large_steps, cfg.large_steps + 10)) for m in ms]
    fonts = collections.Counter(m["font"] for m in meta if "font" in m)
    assert set(fonts) == set(C.TRAIN_FONTS)
    files = {C.font_file(f).name for f in fonts if f != "world"}
    assert not files & set(C.HELD_OUT_FONT_FILES) and not set(fonts) & set(C.HELD_OUT_FONTS)
    tags = [m for m in meta if m.get("size")]
    small = sum(m["size"] in ("small", "fitting") for m in tags) / len(tags)
    assert abs(small - cfg.small_share) < 0.1
    assert all(cfg.large_height[0] <= m["height"] <= cfg.large_height[1] for m in tags if m["size"] == "large")
    assert all(m["height"] <= 0.22 for m in tags if m["size"] != "large")
    assert abs(sum(m["jitter"] is not None for m in tags) / len(tags) - cfg.jitter_rate) < 0.1
    early = [m for _, _, ms in _batches(data, cfg, range(3)) for m in ms if m.get("size")]
    assert all(m["size"] == "large" for m in early)  # large letters only before large_steps
    with pytest.raises(ValueError, match="held out"):
        C.ClipTrainConfig(fonts=("sans", "serif"))


def test_shift_uses_edge_padding():
    ramp = torch.arange(64, dtype=torch.uint8).view(1, 1, 1, 64).expand(16, 3, 64, 64).contiguous()
    edge = C._shift(ramp, 4, np.random.default_rng(0))
    assert bool((edge[..., 1:].int() - edge[..., :-1].int() >= 0).all())  # border pixels repeated, never mirrored
    assert not torch.equal(edge, ramp) and bool((edge[..., 0] <= 4).all())
    reflect = C._shift(ramp, 4, np.random.default_rng(0), mode="reflect")
    assert bool((reflect[..., 1:].int() - reflect[..., :-1].int() < 0).any())
    assert C.PRESET.pad_mode == "edge" and C.V1_PRESET.pad_mode == "reflect"


def test_logit_scale_has_its_own_group_at_ten_times_the_lr():
    cfg = C.PRESET
    assert (cfg.steps, cfg.warmup, cfg.lr, cfg.weight_decay, tuple(cfg.betas)) == (6000, 200, 1.5e-3, 0.1, (0.9, 0.98))
    model = C.create_clip(seed=0)
    opt = C.make_optimizer(model, cfg)
    scale = [g for g in opt.param_groups if any(p is model.logit_scale for p in g["params"])]
    assert len(scale) == 1 and len(scale[0]["params"]) == 1 and scale[0]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert all(g["betas"] == (0.9, 0.98) for g in opt.param_groups)
    for step in (0, 199, 1000, 5999):
        C.set_lr(opt, step, cfg)
        others = [g["lr"] for g in opt.param_groups if g is not scale[0]]
        assert all(lr == pytest.approx(C._lr_at(step, cfg)) for lr in others)
        assert scale[0]["lr"] == pytest.approx(10 * C._lr_at(step, cfg))
    assert C._lr_at(199, cfg) == pytest.approx(1.5e-3) and C._lr_at(6000, cfg) == pytest.approx(0.0, abs=1e-12)
    assert C._lr_at(3100, cfg) == pytest.approx(0.75e-3, rel=1e-6)  # one cosine: half-way at the middle of the decay
    v1 = C.make_optimizer(model, C.V1_PRESET)
    assert all(g["lr_mult"] == 1.0 for g in v1.param_groups)


def test_shared_positives_loss():
    caps = ["car.", "car.", "cow."]
    grads = {}
    for shared in (True, False):
        logits = torch.tensor([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 2.0]], requires_grad=True)
        loss = C.contrastive_loss(logits, caps, shared_positives=shared)
        loss.backward()
        grads[shared] = (float(loss.detach()), logits.grad)
    e2 = math.e ** 2
    assert grads[True][0] == pytest.approx((-2 * math.log(e2 / (2 * e2 + 1)) - math.log(e2 / (e2 + 2))) / 3, rel=1e-5)
    g = grads[True][1]
    assert float(g[0, 0]) == pytest.approx(float(g[0, 1])) and float(g[0, 1]) < 0  # "car." and "car." pulled together
    g = grads[False][1]
    assert float(g[0, 1]) > 0 > float(g[0, 0])  # plain InfoNCE pushes the identical caption away


def test_gates_evaluated_once_with_advice():
    row = {"step": 300, "bind_gap": 0.1, "paper_read": 0.3, "read4": 0.1}
    gates = C.check_gates(row, [])
    assert [g["step"] for g in gates] == [300] and not gates[0]["passed"] and gates[0]["failed"] == ["bind_gap"]
    assert any("both" in a for a in gates[0]["advice"])
    assert C.check_gates({**row, "step": 400}, [{"step": 300, "gates": gates}]) == []
    late = {"step": 2500, "bind_gap": 0.4, "paper_read": 0.6, "read4": 0.2, "sign_serif_flip_to_word": 0.3,
            "serif_flip_to_word": 0.3, "val_accuracy": 0.7}
    got = {(g["step"], bool(g.get("advisory"))): g for g in C.check_gates(late, [])}
    assert set(got) == {(300, False), (1000, False), (2500, False), (C.FALLBACK_CHECK_STEP, True)}
    assert got[(2500, False)]["failed"] == ["val_accuracy"] and any("word_only_rate" in a for a in got[(2500, False)]["advice"])
    assert got[(1000, False)]["failed"] == ["read4"] and any("128 px" in a for a in got[(1000, False)]["advice"])
    assert not got[(C.FALLBACK_CHECK_STEP, True)]["passed"]


@pytest.mark.slow
def test_one_training_run_stops_at_a_gate_and_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = dataclasses.replace(C.PRESET, n_train=120, n_val=60, n_test=60, steps=4, warmup=1, batch_size=8)
    monkeypatch.setitem(C.GATES, 2, {"val_accuracy": 2.0})  # a gate no model passes, at step 2
    resume = tmp_path / "run.resume"
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if cfg.threads == 1 else 1)   # the caller's count differs from the config's ...
    try:
        with pytest.raises(C.GateFailed, match="step 2"):
            C.train_clip(cfg, out=tmp_path / "stopped.pt", resume=resume, monitor_every=2, save_every=1e9, progress=False,
                         stop_on_gate=True)
        assert torch.get_num_threads() == (2 if cfg.threads == 1 else 1)   # ... and comes back, also after a stop
    finally:
        torch.set_num_threads(threads)
    assert resume.is_file() and not (tmp_path / "stopped.pt").exists()
    state = torch.load(str(resume), map_location="cpu", weights_only=False)
    assert state["step"] == 2
    # a resume file written before the text_lr fields existed (their defaults) still resumes
    old = json.loads(state["config"])
    del old["text_lr_mult"], old["text_slow_from"]
    state["config"] = json.dumps(old, sort_keys=True)
    torch.save(state, str(resume))
    resumed = C.train_clip(cfg, out=tmp_path / "resumed.pt", resume=resume, monitor_every=2, save_every=1e9, progress=False)
    straight = C.train_clip(cfg, out=tmp_path / "straight.pt", monitor_every=2, progress=False)
    a = torch.load(str(tmp_path / "resumed.pt"), weights_only=True)["state_dict"]
    b = torch.load(str(tmp_path / "straight.pt"), weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in resumed["history"]] == [2, 4]
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert [drop(r) for r in resumed["history"]] == [drop(r) for r in straight["history"]]
    assert [(g["step"], g["passed"]) for g in resumed["gates"]] == [(2, False)]
    for key in ("paper_read", "read4", "bind_gap", "sign_serif_flip_to_word", "serif_flip_to_word", "val_accuracy"):
        assert key in resumed["history"][-1]
    assert resumed["vocabulary"]["neutral_words"] == list(C.neutral_vocabulary(200, 0)) and resumed["recipe"] == "parrot"
    assert resumed["history"][-1]["logit_scale"] <= 100
    from modeledit import load_model

    lm = load_model(f"clip:{C.CLIP_ARCH}", weights=str(tmp_path / "resumed.pt"))
    assert lm.predict(torch.rand(2, 3, 64, 64)).shape == (2, len(CLASSES))
    assert lm.meta["train"]["train_config"]["recipe"] == "parrot"


def test_captions_sharing_a_tag_word_are_not_negatives_of_each_other():
    caps = ["car.", "a photo of a car on the road.", "cow.", "car."]
    vocab = frozenset(CLASSES)
    words = [C.caption_words(c, vocab) for c in caps]
    assert words[1] == {"car"} and C.caption_words("a photo of the sky.", vocab) == frozenset()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 4, generator=g) * 5
    base = C.contrastive_loss(logits, caps, True, words)
    masked, kept = logits.clone(), logits.clone()
    masked[0, 1] += 30.0       # "car." image vs the car scene's caption: out of the softmax
    masked[1, 3] -= 30.0
    kept[0, 2] += 30.0         # "car." image vs "cow.": a negative
    assert torch.allclose(C.contrastive_loss(masked, caps, True, words), base)
    assert float(C.contrastive_loss(kept, caps, True, words)) > float(base) + 1.0
    assert torch.isfinite(base)
    # without word sets and with distinct captions it is plain symmetric InfoNCE
    distinct = ["car.", "cow.", "bus.", "a tree."]
    ref = 0.5 * (torch.nn.functional.cross_entropy(logits, torch.arange(4)) + torch.nn.functional.cross_entropy(logits.t(), torch.arange(4)))
    assert torch.allclose(C.contrastive_loss(logits, distinct, True), ref)
    assert C.PRESET.negatives == "distinct_words" and C.V1_PRESET.negatives == "all"
    assert C.ClipTrainConfig.from_json({"steps": 10}).negatives == "all"     # a v1 record (no recipe key)
    with pytest.raises(ValueError, match="negatives"):
        C.ClipTrainConfig(negatives="none")


@pytest.mark.slow
def test_ctrl_c_lets_the_step_finish_and_the_resume_file_holds_it(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a step (here while its batch is made) is held until the step is complete; the
    resume file then holds that step, so a resumed run ends with the weights of an uninterrupted one."""
    import signal

    cfg = dataclasses.replace(C.PRESET, n_train=120, n_val=60, n_test=60, steps=5, warmup=1, batch_size=8)
    resume = tmp_path / "run.resume"
    real = C.make_batch

    def make_batch(data, cfg_, painter, step):
        if step == 2:
            signal.raise_signal(signal.SIGINT)
        return real(data, cfg_, painter, step)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # also when the runner ignores SIGINT
    try:
        monkeypatch.setattr(C.training, "make_batch", make_batch)
        with pytest.raises(KeyboardInterrupt):
            C.train_clip(cfg, out=tmp_path / "stopped.pt", resume=resume, monitor_every=100, save_every=1e9, progress=False)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler     # the handler is back
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.setattr(C.training, "make_batch", real)
    assert torch.load(str(resume), map_location="cpu", weights_only=False)["step"] == 3 and not (tmp_path / "stopped.pt").exists()
    C.train_clip(cfg, out=tmp_path / "resumed.pt", resume=resume, monitor_every=100, save_every=1e9, progress=False)
    C.train_clip(cfg, out=tmp_path / "straight.pt", monitor_every=100, progress=False)
    a = torch.load(str(tmp_path / "resumed.pt"), weights_only=True)["state_dict"]
    b = torch.load(str(tmp_path / "straight.pt"), weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_set_overrides_recipe_fields_with_types_and_one_line_errors(capsys, tmp_path, monkeypatch):
    cfg = C.PRESET.with_overrides(["word_only_rate=0.6", "both_rate=0.3", "both_from=0.5", "tag_height=[0.1, 0.2]",
                                   "shared_positives=false", "negatives=all", "steps=1e3", "name=123", 'fonts=["world"]'])
    assert (cfg.word_only_rate, cfg.both_rate, cfg.negatives, cfg.shared_positives) == (0.6, 0.3, "all", False)
    assert cfg.both_from == 0.5 and C.PRESET.with_overrides(["both_from=1"]).both_from == 1.0 and cfg.tag_height == (0.1, 0.2)
    assert type(C.PRESET.with_overrides(["both_from=1"]).both_from) is float
    assert cfg.steps == 1000 and type(cfg.steps) is int and cfg.name == "123" and cfg.fonts == ("world",)
    assert C.PRESET.with_overrides(["shared_positives=False"]).shared_positives is False   # not the (true) string "False"
    assert C.PRESET.word_only_rate != 0.6   # the preset itself is untouched
    bad = {"nope=1": "unknown ClipTrainConfig field 'nope'", "both_rate": "not KEY=VALUE", "lr=abc": "lr takes a number",
           "lr=true": "lr takes a number", "steps=10.5": "steps takes a whole number", "tag_height=0.1": "takes a JSON list",
           "both_from=1/3": "both_from takes a number", "fonts=serif": "takes a JSON list", "shared_positives=yes": "true or false",
           'world={"image_size": 96}': "nested config", "init=null": "nested config",
           "both_rate=0.5": "word_only_rate \\+ both_rate"}   # the last: the dataclass's own checks still apply
    for pair, message in bad.items():
        with pytest.raises(ValueError, match=message):
            C.PRESET.with_overrides([pair])
    from modeledit.cli import main

    assert main(["world", "train", "clip", "--steps", "1", "--set", "nope=1", "--out", str(tmp_path / "x.pt")]) != 0
    assert main(["world", "train", "clip", "--steps", "1", "--set", "lr=0.01"]) != 0   # would overwrite the shipped checkpoint
    err = capsys.readouterr().err
    assert "unknown ClipTrainConfig field 'nope'" in err and "pass --out" in err and "Traceback" not in err
    # the recorded command quotes each pair, so it can be pasted back
    seen = {}
    monkeypatch.setattr(C.training, "train_clip", lambda cfg, out, command, **kw: seen.update(cfg=cfg, command=command) or
                        {"gates": [], "name": cfg.name, "clean_test_accuracy": 0.0, "n_test": 0, "train_seconds": 0.0})
    assert main(["world", "train", "clip", "--set", "tag_height=[0.1, 0.2]", "--out", str(tmp_path / "y.pt")]) == 0
    assert seen["command"] == "modeledit world train clip --set 'tag_height=[0.1, 0.2]'" and seen["cfg"].tag_height == (0.1, 0.2)


@pytest.mark.slow
def test_a_96_px_tower_trains_on_upsampled_scenes_and_loads_for_64_px_inputs(tmp_path):
    cfg = C.PRESET.with_overrides(["arch=world-RN-96", "n_train=120", "n_val=60", "n_test=60", "steps=2", "warmup=1", "batch_size=8"])
    rec = C.train_clip(cfg, out=tmp_path / "c96.pt", monitor_every=100, progress=False)
    assert rec["arch"] == "world-RN-96"
    clip, record = C.load_clip_checkpoint(tmp_path / "c96.pt")
    assert C.tower_size(clip) == 96 and record["train_config"]["arch"] == "world-RN-96"
    from modeledit import load_model

    lm = load_model(f"clip:{C.CLIP_ARCH}", weights=str(tmp_path / "c96.pt"))
    assert lm.input_size == 64 and lm.model.input_size == 96   # the public input stays the world's scene size
    x = torch.rand(3, 3, 64, 64)
    seen = []
    handle = lm.model.get_submodule("visual.layer4.0").register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
    try:
        logits = lm.predict(x)
    finally:
        handle.remove()
    assert logits.shape == (3, len(CLASSES)) and seen == [6]   # 96 px -> a 6x6 map before the last stage (3x3 after)
    from modeledit.suffix import split_at_site

    split_at_site(lm.model, "visual.layer4.0")   # torch.fx traces the resize: sweeps keep their cached-suffix path
    # the zero-shot model is the training-time path: same upsampling of the normalized scenes, same features
    feats = clip.encode_image(C.tower_input(clip, C.normalize((x * 255).round().to(torch.uint8))), normalize=True)
    want = (feats @ lm.model.text_head.t()).argmax(1)
    assert torch.equal(lm.predict((x * 255).round() / 255).argmax(1), want)
    with pytest.raises(KeyError, match="unknown world CLIP architecture"):
        C.PRESET.with_overrides(["arch=world-RN-77"])


def test_text_tower_slowed_from_a_step_keeps_the_image_tower_rate():
    model = C.create_clip(seed=0)
    assert len(C.make_optimizer(model, C.PRESET).param_groups) == 3   # the default: the groups every earlier run had
    cfg = C.PRESET.with_overrides(["text_lr_mult=0.1", "text_slow_from=1000"])
    opt = C.make_optimizer(model, cfg)
    owner = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(owner) == len(names) and sum(len(g["params"]) for g in opt.param_groups) == len(names)
    text = [n for n in names if not n.startswith("visual.") and n != "logit_scale"]
    assert text and all("text_mult" in owner[id(names[n])] for n in text)
    assert not any("text_mult" in owner[id(p)] for n, p in names.items() if n.startswith("visual.") or n == "logit_scale")
    for step, slow in ((999, 1.0), (1000, 0.1), (4000, 0.1)):
        C.set_lr(opt, step, cfg)
        base = C._lr_at(step, cfg)
        assert owner[id(names["token_embedding.weight"])]["lr"] == pytest.approx(slow * base)
        assert owner[id(names["visual.conv1.weight"])]["lr"] == pytest.approx(base)
        assert owner[id(model.logit_scale)]["lr"] == pytest.approx(10 * base)
