"""A warm process for the tests' command-line runs (a fork server).

Every ``modeledit ...`` run in a fresh interpreter spends ~5 s importing torch and torchvision (torchvision's
ops import ``torch._dynamo``) before the command does anything; the README's two example chains alone start 23
such processes. This server imports them once and forks one child per run; the child takes the caller's
arguments, working folder, environment and standard streams (passed over a Unix socket), runs the command as the
``modeledit`` program does (``modeledit.cli.main()``) or a ``python -c`` program, and exits with its code, which the
caller receives. Nothing but the imports is shared: each run is its own process, on its own streams, with a
fresh environment and its own exit code; a signal sent to the caller is passed on to the child.

It is for tests that run a command for what the command does. Tests of process start-up itself (import order,
the interpreter's signal handling, a kill in mid-run) start real processes. TensorFlow and matplotlib are not
imported here (TensorFlow must load after torchvision, and matplotlib reads its backend from the environment when
imported), so a child imports them itself, as a fresh process would.

    python tests/warm_cli.py serve SOCKET     # prints "ready" once the imports are done
    python tests/warm_cli.py modeledit ARG... # the shim the tests put on PATH as `modeledit` (MODELEDIT_WARM_CLI=SOCKET)
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import threading

#: what the server imports before it forks: the modules every command needs and that take seconds to import
PRELOAD = ("numpy", "torch", "torchvision", "PIL.Image", "modeledit", "modeledit.cli", "modeledit.commands.common")
SOCKET_ENV = "MODELEDIT_WARM_CLI"
_HEADER = struct.Struct("!I")


def _recv_exact(conn: socket.socket, n: int, data: bytes = b"") -> bytes:
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("warm_cli: the other end closed the connection")
        data += chunk
    return data


def _send_json(conn: socket.socket, obj) -> None:
    body = json.dumps(obj).encode()
    conn.sendall(_HEADER.pack(len(body)) + body)


def _recv_json(conn: socket.socket):
    (n,) = _HEADER.unpack(_recv_exact(conn, _HEADER.size))
    return json.loads(_recv_exact(conn, n))


# ---- the child: one run ----

def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the requested program on the caller's streams; never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=1 if unbuffered else -1)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)      # the signals a program started from a shell has
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.argv = list(request["argv"])
        # sys.path[0] as a fresh process has it (the server's is this file's folder, tests/): the current folder
        # for `python -c`, the console script's folder for `modeledit`
        sys.path[0] = "" if request["kind"] == "code" else os.path.dirname(sys.executable)
        if request["kind"] == "code":
            exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
            code = 0
        else:
            from modeledit.cli import main

            code = int(main() or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)      # as the interpreter does: die of the signal
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001 - an uncaught error ends the program with its traceback and 1
        import traceback

        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
    finally:
        _flush()
        os._exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: nothing more to deliver
            pass


# ---- the server ----

def serve(path: str) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        try:
            msg, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
            (n,) = _HEADER.unpack(_recv_exact(conn, _HEADER.size, msg))
            request = json.loads(_recv_exact(conn, n))
        except (OSError, ValueError, ConnectionError):
            conn.close()
            continue
        _flush()
        pid = os.fork()
        if pid == 0:
            server.close()
            conn.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        threading.Thread(target=_report, args=(conn, pid), daemon=True).start()


def _report(conn: socket.socket, pid: int) -> None:
    """Tell the caller the child's pid, then its exit code (negative: the signal that ended it)."""
    with conn:
        try:
            _send_json(conn, {"pid": pid})
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        try:
            _send_json(conn, {"code": os.waitstatus_to_exitcode(status)})
        except OSError:
            pass


# ---- the caller ----

class Run:
    """One run in the warm server: ``wait(timeout)`` returns its exit code; ``send_signal``/``kill`` reach it."""

    def __init__(self, path: str, request: dict, fds: tuple[int, int, int]):
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.connect(path)
        body = json.dumps(request).encode()
        socket.send_fds(self.conn, [_HEADER.pack(len(body)) + body], list(fds))
        self.pid = int(_recv_json(self.conn)["pid"])
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code, once the run has ended (``subprocess.Popen.wait``: TimeoutExpired leaves it running)."""
        import subprocess

        if self.returncode is None:
            self.conn.settimeout(timeout)
            try:
                message = _recv_json(self.conn)
            except TimeoutError:
                raise subprocess.TimeoutExpired(["modeledit"], timeout) from None
            self.returncode = int(message["code"])
            self.conn.close()
        return self.returncode

    def poll(self) -> int | None:
        """The exit code if the run has ended, else None (``subprocess.Popen.poll``)."""
        if self.returncode is None:
            import select

            if select.select([self.conn], [], [], 0)[0]:
                self.wait()
        return self.returncode

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def request(argv: list[str], cwd: str | os.PathLike, env: dict[str, str], code: str | None = None) -> dict:
    """A run of ``modeledit ARGV`` (``argv[0]`` is the program's name) or, with ``code``, of ``python -c CODE``."""
    return {"kind": "code" if code is not None else "modeledit", "argv": [str(a) for a in argv], "cwd": os.fspath(cwd),
            "env": dict(env), "code": code}


def _shim(argv: list[str]) -> int:
    """`modeledit ARGS` on PATH: run in the warm server on this process's streams, signals passed on."""
    run = Run(os.environ[SOCKET_ENV], request(["modeledit", *argv], os.getcwd(), dict(os.environ)), (0, 1, 2))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: run.send_signal(s))
    code = run.wait()
    if code < 0:                        # ended by a signal: end this process the same way
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


class WarmCLI:
    """The tests' handle on a running server: ``run`` is ``subprocess.run(..., capture_output=True, text=True)``
    for ``modeledit ARGS`` or ``python -c CODE``; ``env(base)`` puts the ``modeledit`` shim first on PATH for a
    shell."""

    def __init__(self, path: str, bindir: str):
        self.path, self.bindir = path, bindir

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        base = dict(os.environ if base is None else base)
        return {**base, SOCKET_ENV: self.path, "PATH": f"{self.bindir}{os.pathsep}{base.get('PATH', '')}"}

    def start(self, args, cwd, env: dict[str, str] | None = None, code: str | None = None, stdout=None, stderr=None) -> Run:
        """Start ``modeledit ARGS`` (or ``python -c CODE ARGS``) on these streams (files; None: /dev/null)."""
        argv = ["-c", *args] if code is not None else ["modeledit", *args]
        env = dict(os.environ if env is None else env)
        with open(os.devnull) as null:
            out = stdout.fileno() if stdout is not None else os.open(os.devnull, os.O_WRONLY)
            err = stderr.fileno() if stderr is not None else os.open(os.devnull, os.O_WRONLY)
            try:
                return Run(self.path, request(argv, cwd, env, code), (null.fileno(), out, err))
            finally:
                for fd, given in ((out, stdout), (err, stderr)):
                    if given is None:
                        os.close(fd)

    def run(self, args=(), cwd=".", env: dict[str, str] | None = None, code: str | None = None, timeout: float = 600):
        import subprocess
        import tempfile

        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            run = self.start(args, cwd, env, code, stdout=out, stderr=err)
            try:
                rc = run.wait(timeout)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["modeledit", *args], rc, out.read(), err.read())


def shim(bindir: str) -> None:
    """Write the ``modeledit`` shim into ``bindir``: this interpreter, this module, ``_shim``."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(bindir, "modeledit")
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {here!r})\nfrom warm_cli import _shim\nsys.exit(_shim(sys.argv[1:]))\n")
    os.chmod(path, 0o755)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "modeledit":
        sys.exit(_shim(sys.argv[2:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve SOCKET | modeledit ARG...")
