"""Progress bars written to a log file or a pipe: the final 100% line appears once, and ends the line."""
from __future__ import annotations

import io
import re
import time

from modeledit.eval.executors import get_executor
from modeledit.eval.results import ResultStore
from modeledit.progress import tqdm


class SlowFactory:
    """Each cell takes longer than tqdm's mininterval, so the last update draws the bar at 100%."""

    def __call__(self):
        def run(p):
            time.sleep(0.15)
            return [{"x": p["x"]}]

        return run


def _lines(text: str) -> list[str]:
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


def test_a_sweep_logged_to_a_non_tty_prints_its_final_line_once(tmp_path, capsys):
    store = ResultStore(tmp_path / "s", config={"k": 1})
    rep = get_executor("local").run([{"x": i} for i in range(3)], SlowFactory(), store)
    assert rep.done == 3
    err = capsys.readouterr().err     # pytest's capture: a stream that is not a terminal
    final = [s for s in _lines(err) if s.startswith("cells: 100%")]
    assert len(final) == 1, err
    assert "3/3" in final[0] and err.endswith("\n")


def test_final_line_once_however_the_bar_is_driven():
    for drive in ("iterate", "update"):
        out = io.StringIO()
        if drive == "iterate":
            for _ in tqdm(range(4), desc="job", file=out, mininterval=0):
                pass
        else:
            with tqdm(total=4, desc="job", file=out, mininterval=0) as bar:
                for _ in range(4):
                    bar.update(1)
        final = [s for s in _lines(out.getvalue()) if "100%" in s]
        assert len(final) == 1 and out.getvalue().endswith("\n"), out.getvalue()
    # a bar whose last count was never drawn (updates faster than mininterval) still gets its final line
    out = io.StringIO()
    for _ in tqdm(range(1000), desc="fast", file=out, mininterval=60):
        pass
    assert [s for s in _lines(out.getvalue()) if "100%" in s] != [] and out.getvalue().endswith("\n")
    # a transient bar (leave=False) is still cleared, not left behind
    out = io.StringIO()
    for _ in tqdm(range(3), desc="inner", file=out, mininterval=0, leave=False):
        pass
    assert not out.getvalue().endswith("\n") and out.getvalue().rstrip("\r").endswith(" ")


def test_a_nested_bar_is_not_drawn_in_a_log():
    """A bar inside another (fine-tuning steps inside a sweep's cells) would write cursor-up escapes into a
    log file; on a non-terminal stream only the outer bar is drawn, and the inner loop still runs."""
    out = io.StringIO()
    seen = 0
    for _ in tqdm(range(2), desc="cells", file=out, mininterval=0):
        for _ in tqdm(range(3), desc="steps", file=out, mininterval=0, leave=False):
            seen += 1
    text = out.getvalue()
    assert seen == 6
    assert "steps" not in text and "\x1b[A" not in text, text
    assert [s for s in _lines(text) if s.startswith("cells: 100%")]
    # alone, the same bar is drawn
    out = io.StringIO()
    for _ in tqdm(range(3), desc="steps", file=out, mininterval=0):
        pass
    assert "steps" in out.getvalue()
