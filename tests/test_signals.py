"""modeledit.signals: interrupts held to a unit's end, SIGTERM as Ctrl-C, handlers always restored."""
from __future__ import annotations

import signal

import pytest

from modeledit.signals import Terminated, defer_interrupts, ignoring_interrupts, terminate_as_interrupt


@pytest.fixture
def handlers():
    """SIGINT at Python's default (also when the runner ignores it), SIGTERM at the default; both restored."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_ctrl_c_is_held_until_the_unit_ends_then_raised(handlers):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with defer_interrupts() as stop:
            for unit in range(3):
                if unit == 1:
                    signal.raise_signal(signal.SIGINT)
                done.append(unit)                      # the unit in flight finishes
                if stop.requested:
                    stop.raise_now()
    assert done == [0, 1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once(handlers):
    with pytest.raises(KeyboardInterrupt):
        with defer_interrupts() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop.requested
            signal.raise_signal(signal.SIGINT)
            pytest.fail("the second Ctrl-C should have raised")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_under_the_cli_handler_is_held_then_raised_as_terminated(handlers):
    with terminate_as_interrupt():
        with pytest.raises(Terminated):
            with defer_interrupts() as stop:
                signal.raise_signal(signal.SIGTERM)
                assert stop.requested                  # held: we are still here
                stop.raise_now()
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)   # the CLI's handler is back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_signal_stays_ignored(handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with defer_interrupts() as stop:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)
        assert not stop.requested
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_finished_commands_signals_are_ignored_then_restored(handlers):
    """While a finished command delivers its output, Ctrl-C and SIGTERM do nothing; the handlers come back after."""
    with ignoring_interrupts():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)      # the default action would end the test process
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_signals_stay_ignored_for_an_exiting_program(handlers):
    with ignoring_interrupts(restore=False):
        pass
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    signal.raise_signal(signal.SIGINT)           # nothing happens


def test_a_host_programs_own_handler_is_left_alone(handlers):
    seen = []
    mine = lambda signum, frame: seen.append(signum)  # noqa: E731
    signal.signal(signal.SIGINT, mine)
    with ignoring_interrupts():
        assert signal.getsignal(signal.SIGINT) is mine
        signal.raise_signal(signal.SIGINT)
    assert seen == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is mine


def test_a_finished_program_ends_with_its_own_code_on_a_late_signal(tmp_path):
    """exit_on_interrupt: Ctrl-C or SIGTERM after the command finished ends the process at once with the
    command's code (here 3), its output delivered."""
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "from modeledit.signals import exit_on_interrupt\n"
            "print('result', flush=False)\n"
            "exit_on_interrupt(3)\n"
            "os.kill(os.getpid(), signal.{sig})\n"
            "print('never reached')\n")
    for sig in ("SIGINT", "SIGTERM"):
        res = subprocess.run([sys.executable, "-c", code.format(sig=sig)], capture_output=True, text=True, timeout=120)
        assert (res.returncode, res.stdout) == (3, "result\n"), (sig, res.returncode, res.stdout, res.stderr)
