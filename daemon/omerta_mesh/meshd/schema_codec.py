"""The schema's codec (``schema.py``): request dataclasses from JSON-RPC params, checked (types, bounds, every
string's Unicode, length and rule), and results to JSON. ``schema`` re-exports these names."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, field
from typing import Any, Callable

from .errors import ApiError, Code

MAX_STR = 4096


def arg(default: Any = MISSING, *, doc: str, lo: float | None = None, hi: float | None = None, max_len: int = MAX_STR,
        too_long: str | None = None, check: Callable[[str], object] | None = None, jsonrpc_only: bool = False) -> Any:
    """``check``: a string's rule beyond its length (raises ValueError saying what is wrong). ``jsonrpc_only``:
    the D-Bus face has no such argument (it has a default; e.g. a token for JSON-RPC notifications)."""
    meta = {"doc": doc, "lo": lo, "hi": hi, "max_len": max_len, "too_long": too_long, "check": check, "jsonrpc_only": jsonrpc_only}
    if default is MISSING:
        return field(metadata=meta)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def to_json(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj


def request_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


def type_name(tp: Any) -> str:
    if tp is bool:
        return "boolean"
    if tp is int:
        return "integer"
    if tp is float:
        return "number"
    if tp is str:
        return "string"
    if tp == (str | None):
        return "string or null"
    if tp == list[str]:
        return "array of strings"
    raise TypeError(f"unsupported request field type {tp!r}")


def _bad(msg: str, fix: str | None = None) -> ApiError:
    return ApiError(Code.INVALID_PARAMS, msg, fix)


def check_text(name: str, value: str, meta: dict) -> None:
    """The one check of every string parameter, before any state changes: well-formed Unicode (no lone
    surrogates: a reply or state file holding one could not be encoded), at most ``max_len`` characters,
    and the field's own rule (``check``), each refused with INVALID_PARAMS naming the parameter and the fix."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _bad(f"parameter {name!r} is not well-formed Unicode: a lone surrogate (U+{ord(value[e.start]):04X}) "
                   f"at character {e.start}",
                   f"send {name} ({meta['doc']}) as well-formed UTF-8 text: a JSON \\uD800-\\uDFFF escape is only "
                   "valid as half of a high-low surrogate pair") from None
    if len(value) > meta["max_len"]:
        raise _bad(f"parameter {name!r} is too long ({len(value)} characters, at most {meta['max_len']})",
                   meta["too_long"] or f"{name} is limited to {meta['max_len']} characters ({meta['doc']})")
    if meta.get("check") is not None:
        try:
            meta["check"](value)
        except ValueError as e:
            raise _bad(f"parameter {name!r} is not valid: {e}", f"pass {name} as {meta['doc']}") from None


def _check(name: str, tp: Any, value: Any, meta: dict) -> Any:
    want = type_name(tp)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif tp is str or tp == (str | None):
        ok = isinstance(value, str) or (value is None and tp is not str)
        if isinstance(value, str):
            check_text(name, value, meta)
    else:  # list[str]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        for i, v in enumerate(value if ok else []):
            check_text(f"{name}[{i}]", v, meta)
    if not ok:
        raise _bad(f"parameter {name!r} must be a {want}, not {type(value).__name__}")
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and value < lo or hi is not None and value > hi:
        raise _bad(f"parameter {name!r} must be between {lo:g} and {hi:g}, not {value!r}",
                   f"pass {name} ({meta['doc']}) from {lo:g} to {hi:g}")
    return value


def decode_request(cls: type, params: Any) -> Any:
    """Build ``cls`` from JSON-RPC params (an object by name, or an array in field order)."""
    fields = request_fields(cls)
    if params is None:
        params = {}
    if isinstance(params, list):
        if len(params) > len(fields):
            raise _bad(f"too many parameters: {len(params)} given, the method takes {len(fields)}")
        params = {f.name: v for (f, _), v in zip(fields, params)}
    if not isinstance(params, dict):
        raise _bad("params must be an object (by name) or an array")
    known = {f.name for f, _ in fields}
    unknown = sorted(set(params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise _bad(f"unknown parameter {unknown[0]!r}; this method takes: {expected}")
    kwargs = {}
    for f, tp in fields:
        if f.name in params:
            kwargs[f.name] = _check(f.name, tp, params[f.name], dict(f.metadata))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise _bad(f"missing required parameter {f.name!r} ({type_name(tp)}: {f.metadata['doc']})")
    return cls(**kwargs)
