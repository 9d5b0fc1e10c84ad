"""``modeledit studio [--model M] [--host H] [--port P] [--device D] [--precision P] [--deterministic]``: the
interactive editor in the browser (local page)."""
from __future__ import annotations

import argparse

from modeledit.commands.common import add_device_arguments, add_weights_argument, positive_int, runtime_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="world_vgg", help="model to open on: a zoo name (see `modeledit models`)")
    add_weights_argument(p, extra="for --model (the studio takes a checkpoint file, never 'random')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only by default; the page has no login)")
    p.add_argument("--port", type=positive_int, default=8765, help="port to listen on")
    add_device_arguments(p)


def run(args: argparse.Namespace) -> int:
    import logging

    from modeledit.deps import optional_import

    for module in ("starlette", "jinja2", "uvicorn", "multipart"):
        optional_import(module, "studio")
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    check_model_name(args.model)
    check_weights(args.weights)
    check_port_free(args.host, args.port)
    from modeledit.device import current_runtime
    from modeledit.studio.app import serve

    # the server's work runs on job threads, which the command line's context (modeledit.device.using) does not
    # reach: the session is given its runtime explicitly
    runtime = current_runtime() or runtime_from_args(args)

    logging.getLogger(__name__).info("open http://%s:%d/ in a browser (Ctrl-C stops the studio)", args.host, args.port)
    serve(host=args.host, port=args.port, model=args.model, weights=args.weights, runtime=runtime)
    return 0


def check_model_name(name: str) -> None:
    """Refuse a name the zoo does not know before the server starts (a KeyError with the closest names)."""
    from modeledit.models import available_models
    from modeledit.registry import close_matches

    names = available_models()
    if name in names or any(p.endswith(":") and name.startswith(p) and len(name) > len(p) for p in names):
        return
    raise KeyError(f"unknown model {name!r}; closest: {close_matches(name, list(names)) or '-'}; see `modeledit models`")


def check_weights(weights: str | None) -> None:
    """The studio's ``--weights`` is a checkpoint file (or nothing: the model's offline weights); random weights, or a
    path that is not there, are refused in one line before the server starts."""
    from pathlib import Path

    from modeledit.models import is_random

    if weights is None:
        return
    if is_random(weights):
        raise ValueError("the studio does not run models on random weights; give a checkpoint file with --weights, or leave "
                         "it out for a model with offline weights (see the page's model list)")
    if not Path(weights).expanduser().is_file():
        raise FileNotFoundError(f"--weights {weights!r} is not a file; give the path of a .pth/.pt/.safetensors checkpoint")


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that is taken (or a host this machine does not have) with one line, before any loading."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port (or --host)") from None
