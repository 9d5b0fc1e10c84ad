"""``JsonConfig``: the to_json/from_json pair shared by configuration dataclasses.

Example:
    >>> @dataclass
    ... class MyConfig(JsonConfig):
    ...     lr: float = 1e-3
    >>> MyConfig.from_json(MyConfig(lr=0.1).to_json())
    MyConfig(lr=0.1)
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="JsonConfig")


class JsonConfig:
    """Mixin for dataclasses: JSON round trip; unknown fields are a ValueError naming the valid ones."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[T], text: str | Mapping[str, Any]) -> T:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid: {sorted(fields)}")
        return cls(**data)
