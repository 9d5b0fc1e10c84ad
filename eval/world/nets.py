"""Small classifier architectures built from the same blocks as torchvision's.

The world classifiers use them: a VGG-style stack of conv-BN-ReLU blocks in ``features`` (as
torchvision's ``vgg*_bn``) and a ResNet-style network of torchvision ``BasicBlock`` modules, so the
edit-site rules that serve torchvision models serve these unchanged.

Example:
    >>> net = build_net("vgg_small", num_classes=12)
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from modeledit.registry import Registry

#: architecture name -> builder ``fn(num_classes, **kwargs) -> nn.Module``
NETS = Registry("world architecture")


def register_net(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return NETS.decorator(name)


def build_net(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    return NETS.build(arch, num_classes=num_classes, **kwargs)


class SmallVGG(nn.Module):
    """conv-BN-ReLU blocks with max-pooling (``"M"`` in the plan), global average pool, linear head."""

    def __init__(self, plan: Sequence[int | str], num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_net("vgg_small")
def vgg_small(num_classes: int, plan: Sequence[int | str] = (32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"), dropout: float = 0.2) -> nn.Module:
    return SmallVGG(plan, num_classes, dropout)


class SmallResNet(nn.Module):
    """A 3x3 stem and four stages of torchvision ``BasicBlock`` (attribute names as torchvision's ResNet).

    ``stem_stride=2`` halves the resolution in the stem (4x cheaper on the CPU for 64 px inputs).
    """

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], num_classes: int, stem_stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or inplanes != w):
                    down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w))
                layers.append(BasicBlock(inplanes, w, stride if j == 0 else 1, down))
                inplanes = w
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.num_stages = len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_net("resnet_small")
def resnet_small(num_classes: int, widths: Sequence[int] = (32, 64, 128, 256), blocks: Sequence[int] = (1, 1, 1, 1),
                 stem_stride: int = 1) -> nn.Module:
    return SmallResNet(widths, blocks, num_classes, stem_stride)
