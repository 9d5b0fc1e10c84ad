"""The warm server the tests fork command runs from (tests/warm_cli.py): a run is the program a fresh
interpreter would be (same output, same exit code), in the caller's folder and environment, reachable by
signals, and the ``modeledit`` shim on PATH behaves as the installed command in a shell."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


@pytest.mark.parametrize("argv", [["models"], ["layers", "no_such_model"], ["edit", "mobilenet_v2", "--layer", "auto"]])
def test_a_run_prints_and_exits_as_a_fresh_interpreter_does(warm_cli, tmp_path, argv):
    fresh = subprocess.run([sys.executable, "-m", "modeledit", *argv], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                           timeout=300)
    warm = warm_cli.run(argv, cwd=tmp_path, env=ENV, timeout=300)
    assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_a_run_has_the_callers_folder_environment_and_arguments(warm_cli, tmp_path):
    code = "import os, sys; print(os.getcwd(), os.environ['WARM_PROBE'], sys.argv[1:]); sys.exit(3)"
    res = warm_cli.run(["a", "b"], cwd=tmp_path, env={**ENV, "WARM_PROBE": "seen"}, code=code)
    assert res.returncode == 3 and res.stdout.split() == [str(tmp_path), "seen", "['a',", "'b']"], res.stderr
    res = warm_cli.run(cwd=tmp_path, env=ENV, code="import os, sys; print('WARM_PROBE' in os.environ, repr(sys.path[0]))")
    assert res.stdout.split() == ["False", "''"], res.stdout     # nothing left over from the run before; `python -c`'s path
    res = warm_cli.run(cwd=tmp_path, env=ENV, code="raise ValueError('boom')")
    assert res.returncode == 1 and "ValueError: boom" in res.stderr


def test_a_signal_reaches_the_run(warm_cli, tmp_path):
    with (tmp_path / "err").open("w+") as err:
        run = warm_cli.start([], cwd=tmp_path, env=ENV, stderr=err,
                             code="import time; open('started', 'w').close(); time.sleep(60)")
        deadline = time.time() + 60
        while not (tmp_path / "started").exists() and time.time() < deadline:
            time.sleep(0.01)
        assert run.poll() is None
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == -signal.SIGTERM


def test_the_shim_is_the_command_in_a_shell(warm_cli, tmp_path):
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", "command -v modeledit; modeledit models | wc -l; modeledit nosuch"],
                         cwd=tmp_path, env=warm_cli.env(ENV), capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert lines[0] == os.path.join(warm_cli.bindir, "modeledit") and len(lines) == 2 and int(lines[1]) > 5, res.stdout
    assert res.returncode == 2 and "unknown command 'nosuch'" in res.stderr, res.stderr
