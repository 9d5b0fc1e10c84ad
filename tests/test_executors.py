"""Local and Ray executors: same results, crash-safe resume, a killed worker's cell retried."""
from __future__ import annotations

import os

import pytest

from modeledit.eval.executors import get_executor
from modeledit.eval.results import ResultStore


class SquareFactory:
    """Builds the cell function once per worker; optionally kills the worker process on one cell, once."""

    def __init__(self, die_on: int | None = None, marker: str | None = None) -> None:
        self.die_on, self.marker = die_on, marker

    def __call__(self):
        pid = os.getpid()

        def run(p):
            if self.die_on is not None and p["x"] == self.die_on and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(1)  # a worker dying mid-cell
            return [{"x": p["x"], "y": p["x"] ** 2 + 1, "pid": pid}]

        return run


def _cells(n):
    return [{"x": i} for i in range(n)]


def test_local_resumes_without_redoing(tmp_path):
    store = ResultStore(tmp_path / "s", config={"k": 1})
    rep = get_executor("local").run(_cells(3), SquareFactory(), store)
    assert rep.done == 3
    rep = get_executor("local").run(_cells(5), SquareFactory(), ResultStore(tmp_path / "s", config={"k": 1}))
    assert (rep.done, rep.skipped) == (2, 3)
    assert sorted(store.table()["y"]) == [1, 2, 5, 10, 17]


def test_ray_matches_local_and_retries_a_killed_worker(tmp_path):
    pytest.importorskip("ray")
    local = ResultStore(tmp_path / "local", config={"k": 1})
    get_executor("local").run(_cells(6), SquareFactory(), local)
    remote = ResultStore(tmp_path / "ray", config={"k": 1})
    rep = get_executor("ray", workers=2).run(_cells(6), SquareFactory(die_on=4, marker=str(tmp_path / "died")), remote)
    assert rep.failed == {} and rep.retried == ["{'x': 4}"] and rep.done == 6
    cols = ["x", "y"]
    a = local.table()[cols].sort_values("x").reset_index(drop=True)
    b = remote.table()[cols].sort_values("x").reset_index(drop=True)
    assert a.equals(b)
    assert remote.table()["pid"].nunique() >= 2  # ran on more than one worker process


# -- the harness commands' executor and batch flags (modeledit bench, typographic, snow, photos)

HARNESS_ARGS = {"bench": ["bench", "world_vgg", "--pairs", "road:snow"], "typographic": ["typographic", "world_vgg"],
                "snow": ["snow", "world_vgg"], "photos": ["photos", "--quick"]}


def _parsed(argv):
    from modeledit.cli import command_parser
    from modeledit.commands.applies import check_applicable, rules_of

    module, parser = command_parser(argv[0])
    args = parser.parse_args(argv[1:])
    check_applicable(parser, args, rules_of(module, args))
    return args


@pytest.mark.parametrize("command", sorted(HARNESS_ARGS))
def test_harness_takes_executor_workers_and_batch_size(command, tmp_path):
    import socket

    from modeledit.commands.common import executor_from_args, runtime_from_args

    args = _parsed(HARNESS_ARGS[command] + ["--executor", "ray", "--workers", "3", "--batch-size", "16", "--out", str(tmp_path)])
    assert executor_from_args(args) == {"executor": "ray", "address": None, "workers": 3}
    assert runtime_from_args(args).batch_size == 16
    assert executor_from_args(_parsed(HARNESS_ARGS[command] + ["--out", str(tmp_path)])) == {"executor": "local"}
    with socket.socket() as server:   # a port that answers: the address probe lets it through
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"ray://127.0.0.1:{server.getsockname()[1]}"
        args = _parsed(HARNESS_ARGS[command] + ["--executor", "ray", "--address", address, "--out", str(tmp_path)])
        assert executor_from_args(args) == {"executor": "ray", "address": address, "workers": 2}


@pytest.mark.parametrize("command", sorted(HARNESS_ARGS))
@pytest.mark.parametrize("flag,expected", [(["--workers", "3"], r"--workers applies only with --executor ray"),
                                           (["--address", "ray://127.0.0.1:1"], r"--address applies only with --executor ray"),
                                           (["--executor", "ray", "--address", "ray://127.0.0.1:1"], r"the Ray cluster at ray://127.0.0.1:1 does not answer"),
                                           (["--executor", "dask"], r"argument --executor: invalid choice: 'dask'"),
                                           (["--loader-workers", "2"], r"unrecognized arguments: --loader-workers"),
                                           (["--batch-size", "0"], r"--batch-size: '0' is not a positive integer")])
def test_harness_refuses_executor_flags_in_the_wrong_context_with_one_line(command, flag, expected, tmp_path, capsys):
    import re

    from modeledit.cli import main

    out = tmp_path / "out"
    assert main(HARNESS_ARGS[command] + flag + ["--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(expected, lines[0]), lines
    assert not out.exists()


def test_loader_workers_is_one_flag_on_the_commands_that_load_image_folders(tmp_path):
    """stats, edit and sensitivity: --workers and --loader-workers are the DataLoader's workers (one dest)."""
    from modeledit.commands.common import runtime_from_args

    for argv in (["stats", "world_vgg", "--layer", "-1", "--images", str(tmp_path)],
                 ["sensitivity", "world_vgg", "--concepts", "road", "--styles", "snow", "--out", str(tmp_path / "s")]):
        for spelling in ("--workers", "--loader-workers"):
            args = _parsed(argv + [spelling, "3"])
            assert args.loader_workers == 3 and runtime_from_args(args).workers == 3


def test_batch_size_reaches_the_harness_runners_and_the_site_cache():
    from modeledit.device import Runtime, runtime_batch_size, using
    from modeledit.models import load_model
    from modeledit.suffix import SuffixCacheConfig, SuffixEvaluator

    lm = load_model("world_vgg")
    assert runtime_batch_size(128) == 128
    with using(Runtime(batch_size=16)):
        assert runtime_batch_size(128) == 16
        assert SuffixEvaluator(lm.model, lm.normalize, SuffixCacheConfig(batch_size=256)).batch_size == 16
    with using(Runtime()):
        assert runtime_batch_size(128) == 128
