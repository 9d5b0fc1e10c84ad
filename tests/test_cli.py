"""The command line's own behaviour: advice spoken in flags, native log noise held back unless -v, -v that
does not flood and warnings on one line, and a signal after a finished command leaving its exit code alone."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from modeledit.cli import CLI_SPELLINGS, COMMANDS, cli_spelling, command_parser

ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


def _flags(name: str) -> set[str]:
    return {o for a in command_parser(name)[1]._actions for o in a.option_strings}


# the library's own messages, as they are raised (modeledit/edit.py, exemplars.py, editor.py, segmenters/)
FORCE = "the edit was made for other weights; apply it to the model it was made for, or pass force=True (--force on the command line)"
RESIZE = "mask 1 is 10x10; give masks of their image's size, or have them resized (resize_masks=True; --resize-masks on the command line)"
GRABCUT = "grabcut needs a box or a seed mask: pass box=(x0, y0, x1, y1) or seed_mask=, or put them in meta"


@pytest.mark.parametrize("command,message,spoken,gone", [
    ("apply", FORCE, "or pass --force", "force=True"),
    ("edit", RESIZE, "resized (--resize-masks)", "resize_masks=True"),
    ("counterfactuals", GRABCUT, "pass --segmenter-arg box=x0,y0,x1,y1 or", "box=("),
    ("counterfactuals", "m.png holds one unnamed mask; pass concept= to the files segmenter", "--segmenter-arg concept=NAME", "concept= "),
])
def test_python_advice_is_spoken_as_the_commands_flags(command, message, spoken, gone):
    out = cli_spelling(message, command_parser(command)[1])
    assert spoken in out and gone not in out, out


def test_advice_for_flags_a_command_lacks_and_non_advice_stay_as_written():
    _, predict = command_parser("predict")
    assert cli_spelling(GRABCUT, predict) == GRABCUT                    # predict has no --segmenter-arg
    _, edit = command_parser("edit")
    text = "row 3 (strength=0.5, lr=0.1) failed"                       # a description, not advice
    assert cli_spelling(text, edit) == text
    assert cli_spelling(FORCE, None) == FORCE                          # no command: the API's own words


def test_every_cli_spelling_names_a_flag_some_command_has():
    every = set().union(*(_flags(n) for n in COMMANDS))
    for keyword, (flag, _) in CLI_SPELLINGS.items():
        assert flag in every, f"{keyword} -> {flag}: no command has that flag"


@pytest.mark.slow
def test_a_warning_shown_by_the_cli_speaks_flags(tmp_path, warm_cli):
    """The rewrite without statistics warns in Python (stats=second_moment(...)); `modeledit edit` says
    which flag gives them."""
    import skimage.data
    from PIL import Image

    im = Image.fromarray(skimage.data.chelsea()).resize((64, 64))
    im.save(tmp_path / "a.png")
    im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b.png")
    res = warm_cli.run(["edit", "mobilenet_v2", "--layer", "features.16", "--size", "64", "--original", "a.png", "--transformed", "b.png"],
                       cwd=tmp_path, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "--images DIR" in res.stderr and "second_moment(" not in res.stderr, res.stderr[-2000:]


# A child inherits an ignored SIGINT (pytest-xdist's workers may run with one), and Python then installs no
# default_int_handler: each script starts with the signals a program launched from a shell has.
_SHELL_SIGNALS = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"


def _run_script(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SHELL_SIGNALS + textwrap.dedent(code)], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_ctrl_c_while_a_finished_command_delivers_its_output_keeps_its_exit_code(tmp_path):
    """The signal arrives as the command's printed result is flushed (after its work ended): exit 0, not 130."""
    res = _run_script("""
        import io, os, signal, sys
        from modeledit.cli import main

        class Out(io.StringIO):
            def flush(self):
                if self.getvalue():
                    os.kill(os.getpid(), signal.SIGINT)     # Ctrl-C just as the result goes out
        real, sys.stdout = sys.stdout, Out()
        code = main(["models"])
        printed, sys.stdout = sys.stdout.getvalue(), real
        print("code", code, "printed", "mobilenet_v2" in printed, "handler", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "code 0 printed True handler True" in res.stdout, res.stdout + res.stderr[-2000:]
    assert "interrupted" not in res.stderr


def test_ctrl_c_after_the_program_returned_does_not_turn_success_into_130(tmp_path):
    """As the program (`modeledit`, `python -m modeledit`: main() reads sys.argv), a signal during the exit
    that follows a finished command is ignored."""
    res = _run_script("""
        import os, signal, sys
        from modeledit.cli import main

        sys.argv = ["modeledit", "models"]
        code = main()
        os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C while the interpreter shuts down
        os.kill(os.getpid(), signal.SIGTERM)
        sys.exit(code)
        """, tmp_path)
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])


@pytest.mark.parametrize("verbose", [False, True])
def test_native_log_noise_is_held_back_unless_verbose(tmp_path, verbose, warm_cli):
    """LiteRT prints 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU' on file descriptor 2 when the
    MediaPipe segmenter starts: hidden from the command line, shown with -v. The style is a cheap transform
    (black and white), not Magenta: the line comes from the segmenter, and the test runs twice."""
    import skimage.data
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.fromarray(skimage.data.astronaut()).resize((96, 96)).save(tmp_path / "photos" / "astronaut.png")
    argv = (["-v"] if verbose else []) + ["counterfactuals", "--images", "photos", "--concept", "person", "--style", "black and white",
                                          "--out", "cf"]
    res = warm_cli.run(argv, cwd=tmp_path, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert ("XNNPACK" in res.stderr) is verbose, res.stderr[-2000:]


@pytest.mark.parametrize("how", ["line-buffered", "block-buffered", "fresh interpreter"])
def test_a_reader_that_leaves_first_ends_the_command_quietly_with_141(tmp_path, warm_cli, how):
    """`modeledit layers mobilenet_v2 | head -1`: the reader has closed the pipe before the output is written. The
    command ends with 141 (as a shell reports a tool the closed pipe ended), not with a traceback calling it a bug
    (line-buffered output fails inside the command, block-buffered at the final flush) nor, in a fresh interpreter,
    with Python's own broken-pipe report at exit (status 120)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if how == "line-buffered" else {})
    argv = ["layers", "mobilenet_v2"]
    with os.fdopen(write_end, "w") as out, (tmp_path / "err").open("w+") as err:
        if how == "fresh interpreter":
            code = subprocess.run([sys.executable, "-m", "modeledit", *argv], cwd=tmp_path, env=env, stdout=out, stderr=err,
                                  timeout=300).returncode
        else:
            code = warm_cli.start(argv, cwd=tmp_path, env=env, stdout=out, stderr=err).wait(300)
        err.seek(0)
        text = err.read()
    assert code == 141 and "Traceback" not in text and "internal error" not in text and "Broken pipe" not in text, (code, text)


def test_verbose_does_not_flood_and_warnings_are_one_line(capsys, monkeypatch):
    import modeledit.commands.models as cmd
    from modeledit.cli import main

    def run(args):
        logging.getLogger("PIL.PngImagePlugin").debug("STREAM b'IHDR' 16 13")
        logging.getLogger("a_users_tool").debug("our own debug line")
        warnings.warn("ill-conditioned statistics", RuntimeWarning)
        return 0

    monkeypatch.setattr(cmd, "run", run)
    assert main(["-v", "models"]) == 0
    err = capsys.readouterr().err
    assert "STREAM" not in err and "our own debug line" in err
    line = next(ln for ln in err.splitlines() if "ill-conditioned" in ln)
    assert line.startswith("WARNING py.warnings: RuntimeWarning: ill-conditioned statistics (")
    assert "warnings.warn(" not in err  # no echoed source line
    assert logging.getLogger("PIL").level == logging.NOTSET  # restored after the command


def test_native_stderr_is_shown_when_the_block_fails(capfd):
    from modeledit.deps import native_stderr_quiet

    with native_stderr_quiet():
        os.write(2, b"native chatter\n")
    assert "native chatter" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), native_stderr_quiet():
        os.write(2, b"native diagnosis\n")
        raise RuntimeError("failed")
    assert "native diagnosis" in capfd.readouterr().err


def test_edit_uses_the_statistics_stats_wrote(tmp_path, capsys):
    """`modeledit stats` prints its cache file; `edit --stats FILE` uses it (checked against site and weights),
    and `edit --images` with the same folder finds the same file in the cache."""
    import json

    import skimage.data
    from PIL import Image

    from modeledit.cli import main

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, name in enumerate(("chelsea", "coffee", "astronaut", "rocket")):
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((64, 64)).save(imgs / f"{i}.png")
    pair = ["--original", str(imgs / "0.png"), "--transformed", str(imgs / "1.png"), "--size", "64"]
    cache = tmp_path / "cache"
    assert main(["stats", "mobilenet_v2", "--layer", "features.16", "--images", str(imgs), "--size", "64", "--cache-dir", str(cache)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert main(["edit", "mobilenet_v2", "--layer", "features.16", *pair, "--stats", made["cache"]]) == 0
    out = capsys.readouterr()
    used = json.loads(out.out)["statistics"]
    assert used["source"] == "second_moment" and used["keys"] == made["keys"], used
    assert "C = I" not in out.err

    assert main(["edit", "mobilenet_v2", "--layer", "features.15", *pair, "--stats", made["cache"]]) == 2
    assert "holds site 'features.16', not 'features.15'" in capsys.readouterr().err
    assert main(["edit", "mobilenet_v2", "--layer", "features.16", *pair, "--stats", made["cache"], "--images", str(imgs)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["edit", "mobilenet_v2", "--layer", "features.16", *pair, "--stats", str(imgs / "0.png")]) == 2
    assert "is not a statistics file" in capsys.readouterr().err


def test_an_interrupt_wrapped_in_another_error_is_still_an_interrupt():
    """Ctrl-C inside a lazy import surfaces as a RuntimeError raised from KeyboardInterrupt: exit 130, no traceback
    (seen in a fresh clone's interrupt test)."""
    from modeledit.cli import _interrupt_behind

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("import failed") from inner
    except RuntimeError as exc:
        assert isinstance(_interrupt_behind(exc), KeyboardInterrupt)
    assert _interrupt_behind(ValueError("plain")) is None
