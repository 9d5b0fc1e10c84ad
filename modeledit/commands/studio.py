"""``modeledit studio [--model M] [--host H] [--port P]``: the interactive editor in the browser (local page)."""
from __future__ import annotations

import argparse

from modeledit.commands.common import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="world_vgg", help="model to open on: a zoo name (see `modeledit models`)")
    p.add_argument("--weights", default=None, help="a local checkpoint for --model")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only by default; the page has no login)")
    p.add_argument("--port", type=positive_int, default=8765, help="port to listen on")


def run(args: argparse.Namespace) -> int:
    import logging

    from modeledit.deps import optional_import

    for module in ("starlette", "jinja2", "uvicorn", "multipart"):
        optional_import(module, "studio")
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    from modeledit.studio.app import serve

    logging.getLogger(__name__).info("open http://%s:%d/ in a browser (Ctrl-C stops the studio)", args.host, args.port)
    serve(host=args.host, port=args.port, model=args.model, weights=args.weights)
    return 0
