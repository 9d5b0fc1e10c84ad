"""``modeledit studio``: paint a concept, restyle it, rewrite the rule and see what changed, in the browser.

A local web app (Starlette + Jinja2 templates + a small canvas page, all served from this package, offline)
over the public functions of the core and the harnesses. :mod:`.session` holds the state and the
operations, :mod:`.jobs` runs long work off the request thread (one job at a time), :mod:`.app` is the web
layer. Needs the ``studio`` extra (``pip install 'modeledit[studio]'``).

Example:
    >>> from modeledit.studio import serve
    >>> serve(port=8765, model="mobilenet_v2")        # then open http://127.0.0.1:8765/
"""
from __future__ import annotations

from typing import Any

__all__ = ["serve", "create_app", "Studio"]


def __getattr__(name: str) -> Any:
    if name in ("serve", "create_app"):
        from modeledit.studio import app

        return getattr(app, name)
    if name == "Studio":
        from modeledit.studio.session import Studio

        return Studio
    raise AttributeError(name)
