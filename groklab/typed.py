"""Typed settings: a frozen dataclass built from a TOML table and checked against its annotations, and a value
written as it is typed in TOML or `--set`. The run config (`groklab.config`), every task's data config
(`groklab.tasks`), sweep files and curricula use these, so each rule and each message is written once.

Unknown keys, wrong types, choices outside a field's `Literal[...]` and non-finite floats (NaN, ±inf) are errors
that name the key and the fix; nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal

from groklab.errors import UserError


def format_value(value: Any) -> str:
    """A value as it is typed in TOML or `--set`, shortest exact form: 9.0 → 9, 1e-4 → 0.0001, True → true,
    'ema' → 'ema', (0.9, 0.98) → [0.9, 0.98], nan → nan."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, list | tuple):
        return f"[{', '.join(format_value(v) for v in value)}]"
    return repr(value) if isinstance(value, str) else str(value)


def check_choice(key: str, value: Any, options: Iterable[Any]) -> None:
    """Refuse a value outside `options`, listing them: `model.init='x' is not one of gpt2, torch`."""
    options = tuple(options)
    if value not in options:
        raise UserError(f"{key}={format_value(value)} is not one of {', '.join(str(o) for o in options)}")


def refuse_unknown(given: Iterable[str], known: Iterable[str], where: str, prefix: str = "") -> None:
    """Refuse keys that are not settings, naming the first and listing the valid ones:
    `unknown key model.n_layer; valid keys in [model]: activation, ...`."""
    known = sorted(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"unknown key {prefix}{unknown[0]}; valid keys {where}: {', '.join(known)}")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _example(key: str, default: Any) -> str:
    return "" if default is dataclasses.MISSING else f", e.g. the default {key}={format_value(default)}"


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, tuple) and any(_non_finite(v) for v in value)


def _convert(value: Any, annotation: Any, key: str, default: Any) -> Any:
    """Check a value's type (and gently convert: int→float, list→tuple), and its `Literal` choices."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is Literal:
        check_choice(key, value, typing.get_args(annotation))
        return value
    if origin is tuple:
        args = typing.get_args(annotation)
        if args[-1:] == (Ellipsis,):  # tuple[str, ...]: any length
            args = args[:1] * len(value) if isinstance(value, list | tuple) else ()
            size = ""
        else:
            size = f" of {len(args)} values"
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise UserError(f"{key}={format_value(value)} must be a list{size}{_example(key, default)}")
        return tuple(_convert(v, a, key, dataclasses.MISSING) for v, a in zip(value, args, strict=True))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool) and type(value) is not annotation:
        raise UserError(f"{key}={format_value(value)} must be of type {annotation.__name__}")
    return value


def _coerce(value: Any, annotation: Any, key: str, default: Any = dataclasses.MISSING) -> Any:
    """`value` checked against a field's annotation: its type, its `Literal` choices, and for floats that it
    is finite (a NaN learning rate or an infinite φ would otherwise fail deep inside a run, or silently)."""
    out = _convert(value, annotation, key, default)
    if _non_finite(out):
        fix = _example(key, default)
        raise UserError(f"{key}={format_value(value)} must be finite (NaN and ±inf are refused){fix}")
    return out


def check_fields(obj: Any, prefix: str) -> None:
    """Check every field of a config dataclass against its annotation (see `_coerce`), defaults included."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _coerce(getattr(obj, f.name), hints[f.name], f"{prefix}.{f.name}", _default(f))


def build(cls: type, values: Any, prefix: str) -> Any:
    """Dataclass `cls` from a TOML table, refusing unknown keys by name and checking each value's type."""
    if not isinstance(values, dict):
        raise UserError(f"[{prefix}] must be a table of settings, got {format_value(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    refuse_unknown(values, fields, f"in [{prefix}]", f"{prefix}.")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{prefix}.{k}", _default(fields[k])) for k, v in values.items()})
