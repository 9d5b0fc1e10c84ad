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
