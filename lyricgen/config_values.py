"""A preset's (or the command line's) values read into typed settings: each checked against
its field's annotation, an unknown key named."""

from __future__ import annotations

import difflib
import sys
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from lyricgen.errors import UsageError

# What a run is asked to do, not how: options with no preset key.
COMMAND_LINE_ONLY = {"prefix", "checkpoint", "backend", "device", "unknown", "json", "config",
                     "resume", "overwrite"}


def checked_fields(klass: type, table: dict[str, Any], where: str) -> dict[str, Any]:
    """A preset table's (or the options') values for the dataclass `klass`, each checked
    against its field's type; an unknown key named, with the key it may have meant."""
    hints = get_type_hints(klass)
    out = {}
    for key, value in table.items():
        if key not in hints:
            close = difflib.get_close_matches(key, hints, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            if key in COMMAND_LINE_ONLY:
                hint = f": --{key.replace('_', '-')} is given on the command line, not in a preset"
            raise UsageError(f"{where}: unknown key '{key}'{hint}")
        out[key] = _coerce(value, hints[key], f"{where} {key}")
    return out


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """`value` checked against the annotation `typ` (ints are accepted where floats are)."""
    origin, args = get_origin(typ), get_args(typ)
    if origin in (Union, types.UnionType):  # X | None
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where)
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{where} must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise UsageError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > sys.float_info.max:  # float() would overflow
            raise UsageError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise UsageError(f"{where} must be {_TYPE_NAMES.get(typ, typ.__name__)}, got {value!r}")
    return value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
