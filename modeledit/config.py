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
        """A copy with ``KEY=VALUE`` overrides (command-line ``--set``), each VALUE read as the field's type:
        numbers for float and int fields (an int field takes whole numbers only), true/false for bool ones,
        the text as it is for str ones, a JSON list for tuple ones (``[0.1, 0.2]``), and JSON (``null``, a
        number) for optional fields that are None. Nested configs cannot be set this way. An unknown key, a
        malformed pair or a value of the wrong type is a ValueError naming the key; the dataclass's own
        checks then validate the values.

        Example:
            >>> @dataclass
            ... class MyConfig(JsonConfig):
            ...     lr: float = 1e-3
            ...     sizes: tuple = (1, 2)
            >>> MyConfig().with_overrides(["lr=0.5", "sizes=[3, 4]"])
            MyConfig(lr=0.5, sizes=(3, 4))
        """
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise ValueError(f"override {pair!r} is not KEY=VALUE")
            if key not in fields:
                raise ValueError(f"unknown {type(self).__name__} field {key!r} in {pair!r}; valid: {sorted(fields)}")
            changes[key] = _typed_value(key, raw.strip(), getattr(self, key), str(fields[key].type))
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _typed_value(key: str, raw: str, current: Any, annotation: str) -> Any:
    """``raw`` (command-line text) as the type of ``current`` (the field's value now; ``annotation`` for None)."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"--set {key}={raw}: {key} takes {expected}")

    def parsed(expected: str) -> Any:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise bad(expected) from None

    if dataclasses.is_dataclass(current) or "Config" in annotation:
        raise ValueError(f"--set {key}=...: {key} is a nested config and cannot be set from the command line")
    if isinstance(current, bool):
        if raw.lower() not in ("true", "false"):
            raise bad("true or false")
        return raw.lower() == "true"
    if isinstance(current, str):
        return raw
    if isinstance(current, (int, float)):
        v = parsed("a number")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        if isinstance(current, int):
            if float(v) != int(v):
                raise bad("a whole number")
            return int(v)
        return float(v)
    if isinstance(current, tuple):
        v = parsed("a JSON list such as [0.1, 0.2]")
        if not isinstance(v, list):
            raise bad("a JSON list such as [0.1, 0.2]")
        kinds = {type(c) for c in current}
        if kinds == {float}:
            if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
                raise bad("a list of numbers")
            return tuple(float(e) for e in v)
        return tuple(tuple(e) if isinstance(e, list) else e for e in v)
    return parsed("a JSON value (null, a number)")    # an optional field that is None now (stop_at=500, stop_at=null)
