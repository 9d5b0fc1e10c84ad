"""``modeledit models``: the names ``load_model`` accepts."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from modeledit.models import available_models

    for name, desc in available_models().items():
        print(f"{name:<16} {desc}")
    return 0
