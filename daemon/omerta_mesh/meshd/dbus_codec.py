"""Schema <-> D-Bus types, in one place.

Requests: each request field is one typed D-Bus argument, in field order: ``str`` -> ``s``, ``int`` -> ``x``,
``float`` -> ``d``, ``bool`` -> ``b``, ``list[str]`` -> ``as``, and ``str | None`` -> ``s`` with the empty
string meaning "not given" (D-Bus has no null).

Results: every result is a JSON-like dict and travels as ``a{sv}``: str -> ``s``, bool -> ``b``, int ->
``x``, float -> ``d``, dict -> ``a{sv}``, list -> ``av``; keys whose value is null are left out.
``unwrap`` turns such a value back into plain Python (clients and tests use it).
"""

from __future__ import annotations

from typing import Any

from dbus_fast import Variant

from .registry import MethodSpec
from .schema import request_fields

_ARG = {str: "s", int: "x", float: "d", bool: "b"}


def arg_signature(tp: Any) -> str:
    if tp in _ARG:
        return _ARG[tp]
    if tp == (str | None):
        return "s"
    if tp == list[str]:
        return "as"
    raise TypeError(f"no D-Bus type for request field type {tp!r}")


def in_args(spec: MethodSpec) -> list[tuple[str, str]]:
    """(argument name, D-Bus signature) of a method's request fields, in order."""
    return [(f.name, arg_signature(tp)) for f, tp in request_fields(spec.request)]


def args_to_params(spec: MethodSpec, args: tuple | list) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for (f, tp), value in zip(request_fields(spec.request), args):
        if tp == (str | None) and value == "":
            continue  # not given: the field's default applies
        params[f.name] = value
    return params


def to_variant(value: Any) -> Variant:
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("x", value)
    if isinstance(value, float):
        return Variant("d", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, dict):
        return Variant("a{sv}", to_vardict(value))
    if isinstance(value, (list, tuple)):
        return Variant("av", [to_variant(v) for v in value if v is not None])
    if isinstance(value, bytes):
        return Variant("ay", value)
    raise TypeError(f"no D-Bus form for {type(value).__name__}")


def to_vardict(d: dict[str, Any]) -> dict[str, Variant]:
    return {str(k): to_variant(v) for k, v in d.items() if v is not None}


def unwrap(value: Any) -> Any:
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [unwrap(v) for v in value]
    return value
