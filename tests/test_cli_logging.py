"""The command line's console (modeledit/cli.py: -v and warnings); to be merged into test_cli.py by its owner."""
from __future__ import annotations

import logging
import warnings


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
