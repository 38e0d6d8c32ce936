"""Schema <-> D-Bus types, in one place: every D-Bus signature of the face is derived here from schema.py.

Types: ``str`` -> ``s``, ``int`` -> ``x``, ``float`` -> ``d``, ``bool`` -> ``b``, ``list[T]`` -> ``aT``,
``dict[str, int]`` -> ``a{sx}``, a result dataclass or a free-form ``dict`` -> ``a{sv}``; ``T | None`` is T's
type (D-Bus has no null).

Requests: each request field is one typed argument, in field order, except fields marked ``jsonrpc_only``
(ping's ``progress`` token), which D-Bus callers cannot pass; ``str | None`` is ``s`` with the empty string
meaning "not given".

Results: a result whose fields all have a fixed type (no null, nothing free-form: ``network.create`` ->
``sss``) is returned as one out argument per field, in order. Any other result is one ``a{sv}`` whose
values carry the schema's types (``peers`` is ``aa{sv}``, ``rtt_ms`` is always ``d``), keys whose value is
null left out. Only free-form members (``own_nat``, ``snapshot``, event fields) are typed from their values:
a homogeneous list as ``aT``, an empty or mixed one as ``av``. ``unwrap`` turns any of it back into plain
Python (tests and clients use it).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from dbus_fast import Variant

from .registry import MethodSpec
from .schema import request_fields

_ARG = {str: "s", int: "x", float: "d", bool: "b"}
FIXED = {"s", "x", "d", "b", "as", "ax"}  # a result made only of these is returned as plain out arguments


def strip_none(tp: Any) -> Any:
    """``T | None`` -> ``T``; any other type as it is."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def dbus_type(tp: Any) -> str:
    """The D-Bus signature of a schema type (a request or result field)."""
    tp = strip_none(tp)
    if tp in _ARG:
        return _ARG[tp]
    if dataclasses.is_dataclass(tp):
        return "a{sv}"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is dict or origin is dict:
        return "a{s" + _ARG[args[1]] + "}" if args and args[1] in _ARG else "a{sv}"
    if origin is list and args:
        return "a" + dbus_type(args[0])
    raise TypeError(f"no D-Bus type for schema type {tp!r}")


def arg_signature(tp: Any) -> str:
    """The D-Bus type of a request field (the request types schema.py allows)."""
    if tp not in _ARG and tp != (str | None) and tp != list[str]:
        raise TypeError(f"no D-Bus type for request field type {tp!r}")
    return dbus_type(tp)


def dbus_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The request fields a D-Bus caller passes, in order (all but the ``jsonrpc_only`` ones)."""
    return [(f, tp) for f, tp in request_fields(cls) if not f.metadata.get("jsonrpc_only")]


def in_args(spec: MethodSpec) -> list[tuple[str, str]]:
    """(argument name, D-Bus signature) of a method's D-Bus arguments, in order."""
    return [(f.name, arg_signature(tp)) for f, tp in dbus_fields(spec.request)]


def args_to_params(spec: MethodSpec, args: tuple | list) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for (f, tp), value in zip(dbus_fields(spec.request), args):
        if tp == (str | None) and value == "":
            continue  # not given: the field's default applies
        params[f.name] = value
    return params


@functools.cache
def result_fields(cls: type) -> list[tuple[str, Any]]:
    """(name, type) of a result dataclass's fields (schema's ``request_fields``, cached: every result goes through it)."""
    return [(f.name, tp) for f, tp in request_fields(cls)]


@functools.cache
def is_fixed(cls: type) -> bool:
    return all(strip_none(tp) == tp and dbus_type(tp) in FIXED for _, tp in result_fields(cls))


def out_args(cls: type) -> list[tuple[str, str]]:
    """(name, D-Bus signature) of the out arguments that carry a result of type ``cls``."""
    if is_fixed(cls):
        return [(name, dbus_type(tp)) for name, tp in result_fields(cls)]
    return [("result", "a{sv}")]


def encode(value: Any, tp: Any) -> Any:
    """A JSON-ready value of schema type ``tp`` as the Python value of its D-Bus type."""
    tp = strip_none(tp)
    if dataclasses.is_dataclass(tp):
        return encode_fields(tp, value)  # type: ignore[arg-type]
    if tp is float:
        return float(value)
    if tp in _ARG:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return [encode(v, args[0]) for v in value]
    if args and args[1] in _ARG:
        return {str(k): v for k, v in value.items()}
    return to_vardict(value)


def encode_fields(cls: type, d: dict[str, Any]) -> dict[str, Variant]:
    """A result dataclass's JSON form as ``a{sv}``, each value typed by the schema; null members left out."""
    return {name: Variant(dbus_type(tp), encode(d[name], tp)) for name, tp in result_fields(cls) if d.get(name) is not None}


def encode_result(cls: type, d: dict[str, Any]) -> Any:
    """What a D-Bus method returns for a result: its out arguments (see ``out_args``)."""
    if not is_fixed(cls):
        return encode_fields(cls, d)
    values = [encode(d[name], tp) for name, tp in result_fields(cls)]
    return values[0] if len(values) == 1 else values


def to_variant(value: Any) -> Variant:
    """A free-form value, typed from itself (event fields, ``own_nat``, ``snapshot``)."""
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
        items = [to_variant(v) for v in value if v is not None]
        sigs = {v.signature for v in items}
        if len(sigs) == 1:
            return Variant("a" + sigs.pop(), [v.value for v in items])
        return Variant("av", items)  # empty, or of mixed types
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
