"""``modeledit models``: the names ``load_model`` accepts, and which have real weights offline."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    from modeledit.models import OFFLINE_MODELS, available_models

    models = available_models()
    width = max(len(n) for n in models) + 2
    print(f"{'name':<{width}}{'offline weights':<17}description")
    for name, desc in models.items():
        offline = "yes" if name in OFFLINE_MODELS else "no (--weights)"
        print(f"{name:<{width}}{offline:<17}{desc.replace('``', '')}")
    print("a model without offline weights is refused unless --weights names some: a torchvision enum (IMAGENET1K_V1) or "
          "open_clip tag where the network is open, a local checkpoint, or 'random'")
    return 0
