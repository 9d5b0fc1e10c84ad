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
from typing import Any, Mapping, Sequence, TypeVar

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

    def with_overrides(self: T, pairs: Sequence[str]) -> T:
        """A copy with ``KEY=VALUE`` overrides (command-line ``--set``); VALUE is JSON where it parses
        (numbers, true/false, lists, which become tuples where the field holds a tuple), otherwise a
        string. An unknown key or a malformed pair is a ValueError naming the problem; the dataclass's own
        checks then validate the values.

        Example:
            >>> @dataclass
            ... class MyConfig(JsonConfig):
            ...     lr: float = 1e-3
            ...     sizes: tuple = (1, 2)
            >>> MyConfig().with_overrides(["lr=0.5", "sizes=[3, 4]"])
            MyConfig(lr=0.5, sizes=(3, 4))
        """
        fields = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise ValueError(f"override {pair!r} is not KEY=VALUE")
            if key not in fields:
                raise ValueError(f"unknown {type(self).__name__} field {key!r} in {pair!r}; valid: {sorted(fields)}")
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            if isinstance(getattr(self, key), float) and type(value) is int:
                value = float(value)   # "0" for a float field: the same config (and JSON) as "0.0"
            if isinstance(getattr(self, key), tuple) and isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            changes[key] = value
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
