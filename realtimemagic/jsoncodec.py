"""Strict JSON (RFC 8259) both ways, fast where it can be: orjson when it is importable (the
CPython install pulls it in), the standard library otherwise (PyPy, or orjson missing).  No I/O,
no gevent.

The standard library's result is the reference: for everything the two backends are asked, the
value read and the reason a text is refused are the same (tests/test_jsoncodec.py runs both on
every edge case).  orjson answers the common case; whatever it refuses, or may read differently,
goes to the standard library, which says why (or, for what orjson refuses and the reference
accepts, reads it):

- ``NaN``, ``Infinity``, numbers out of the float range (``1e999``): both refuse, with the
  reference's reason.  On the way out orjson writes NaN as ``null``; a ``null`` in its output
  sends the value to the reference encoder, which refuses NaN with ValueError.
- lone surrogates (``"\\ud800"``): orjson refuses them both ways; the reference says why
  (ValueError out, :class:`BadRequest` in).  :func:`loads_lenient` (the SockJS frame, whose
  strings may hold them, as for sockjs-node) reads them with the reference.
- integers out of 64 bits: orjson reads them as floats, and refuses to write them.  A text
  with 19 digits or more is read by the reference (exact ints); such a value is written by it.
- nesting: orjson reads 1024 levels, the reference as deep as the interpreter's recursion limit
  allows (about 1000 on CPython, less from deep in a stack), and orjson writes 254.  A text with
  :data:`FAST_BRACKETS` or more brackets is read by the reference; deeper values are written by
  it.  Past its limit, either way: "nested too deeply".
- non-str keys (``{1: 2}``): orjson refuses, the reference writes ``{"1":2}``: so written.
- types JSON has not: orjson writes ``uuid.UUID`` and ``enum.Enum`` natively, the reference is
  given the same (a UUID's text, an Enum's value); datetimes and dataclasses pass through
  orjson to the reference, which refuses them (TypeError) as before.
- floats are written as their shortest repr by both, but orjson writes one exponent digit where
  Python writes two (``1e-7``, not ``1e-07``): the same number, not the same bytes.

Duplicate keys: the last wins in both.  Output: compact separators, non-ASCII characters kept.
"""
import enum
import importlib
import json
import sys
import uuid
from typing import Any, Callable, Dict, Tuple, Union

from .config import FIXED
from .exceptions import BadRequest


def _import_orjson() -> Any:
    """orjson, or None: installed on CPython (install_requires), not on PyPy."""
    try:
        return importlib.import_module("orjson")
    except ImportError:
        return None


_orjson: Any = _import_orjson()

#: On PyPy, :func:`loads` reads with plain ``json.loads`` first (:func:`plain_loads`).
_PLAIN_FIRST = sys.implementation.name == "pypy"
#: The backend of :func:`loads` and :func:`dumps`: "orjson" or "json".
BACKEND = "json" if _orjson is None else "orjson"

#: Texts with at least this many brackets (``[`` and ``{``) are read by the standard library:
#: it is the one whose nesting limit the rest of the server lives with.
FAST_BRACKETS = FIXED.json_fast_brackets
#: Texts with 19 digits or more (in all) are read by the standard library: orjson reads integers
#: out of 64 bits as floats (the smallest such, -2**63 - 1, has 19 digits).  Counting digits
#: costs a tenth of orjson's parse; finding a run of 19 would cost three times it.
_DIGITS = b"0123456789"


# -- the standard library: the reference -------------------------------------------------------

def _not_json(constant: str) -> None:
    raise BadRequest("not JSON: %s is not a JSON value" % constant)


def _finite(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf (1e999 overflows): JSON has no such number
        raise BadRequest("not JSON: number %s is out of range" % text[:40])
    return value


def _other_types(value: Any) -> Any:
    """What orjson writes natively and the standard library would not: the same here."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                            default=_other_types)


def lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (never valid on its own in a Python str)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def stdlib_dumps(value: Any) -> str:
    """:func:`dumps` by the standard library."""
    text = _ENCODER.encode(value)  # ValueError for NaN and infinities
    if lone_surrogate(text):
        raise ValueError("a lone surrogate is not valid Unicode")
    return text


def stdlib_loads(text: str) -> Any:
    """:func:`loads` by the standard library."""
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise BadRequest("not JSON: nested too deeply") from None
    except ValueError:  # JSONDecodeError, and the int digits limit of Python 3.11
        raise BadRequest("not JSON") from None
    # A lone surrogate in a string can only come from a \\uD800 to \\uDFFF escape: no such
    # escape, no walk.  (The one-character search is a memchr; the longer ones cost about a
    # nanosecond a character, paid only by text with backslashes.)
    if "\\" in text and ("\\ud" in text or "\\uD" in text) and _holds_lone_surrogate(value):
        raise BadRequest("not JSON: a lone surrogate (\\ud800 to \\udfff without its pair) is "
                         "not valid Unicode")
    return value


def _all_finite(value: Any) -> bool:
    """Whether every float in ``value`` (as json.loads gives it) is a finite number."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is float:
            if item - item != 0.0:  # nan, inf
                return False
        elif kind is list:
            pending.extend(item)
        elif kind is dict:
            pending.extend(item.values())
    return True


def plain_loads(text: str) -> Any:
    """:func:`loads` by the standard library's plain ``json.loads``, then a walk for NaN and
    infinities: on PyPy the decoder with hooks runs in Python, the plain one in RPython (five
    times faster), and the JIT makes the walk cheap.  Whatever the walk or json.loads refuses,
    and texts with :data:`FAST_BRACKETS` brackets or more, go to the reference, which says
    why."""
    if (type(text) is str and (len(text) < FAST_BRACKETS
                               or text.count("[") + text.count("{") < FAST_BRACKETS)):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            if _all_finite(value) and not (
                    "\\" in text and ("\\ud" in text or "\\uD" in text)
                    and _holds_lone_surrogate(value)):
                return value
    return stdlib_loads(text)


def _holds_lone_surrogate(value: Any) -> bool:
    try:
        stdlib_dumps(value)
    except ValueError:
        return True
    except RecursionError:  # read within the limit, one level too deep to write: not JSON
        return True
    return False


def stdlib_loads_lenient(data: Union[str, bytes]) -> Any:
    """:func:`loads_lenient` by the standard library."""
    return json.loads(data)


# -- orjson, for what it reads and writes as the reference does ------------------------------

def orjson_loads(text: str) -> Any:
    """:func:`loads` by orjson, the reference for what orjson does not answer alike."""
    assert _orjson is not None
    try:
        data = text.encode("utf-8")
    except (UnicodeEncodeError, AttributeError):  # a raw lone surrogate, not a str: the
        return stdlib_loads(text)                 # reference says why (BadRequest, TypeError)
    # Cheap, and enough to rule out what orjson reads otherwise: a text of fewer than 19 digits
    # holds no integer out of 64 bits; one of fewer brackets than FAST_BRACKETS is no deeper.
    if (len(data) - len(data.translate(None, _DIGITS)) < 19
            and (len(data) < FAST_BRACKETS
                 or data.count(b"[") + data.count(b"{") < FAST_BRACKETS)):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # not JSON, or not as orjson reads it: the reference says which
    return stdlib_loads(text)


#: Values orjson would write and the reference would not, passed to the reference instead.
_PASSTHROUGH = 0 if _orjson is None else (
    _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME
    | _orjson.OPT_PASSTHROUGH_SUBCLASS)


def orjson_dumps(value: Any) -> str:
    """:func:`dumps` by orjson, the reference for what orjson does not write alike."""
    assert _orjson is not None
    try:
        data = _orjson.dumps(value, option=_PASSTHROUGH)
    except TypeError:  # JSONEncodeError: a lone surrogate, a non-str key, a big int, depth...
        return stdlib_dumps(value)
    if b"null" in data:  # perhaps a NaN or an infinity, which orjson writes as null
        return stdlib_dumps(value)
    return data.decode("utf-8")


def orjson_loads_lenient(data: Union[str, bytes]) -> Any:
    """:func:`loads_lenient` by orjson, the reference for what orjson refuses."""
    assert _orjson is not None
    try:
        return _orjson.loads(data)
    except _orjson.JSONDecodeError:  # lone surrogates, a BOM, UTF-16 bytes: as json.loads
        return json.loads(data)


# -- the interface -----------------------------------------------------------------------------

def loads(text: str) -> Any:
    """Strict JSON (RFC 8259) from valid Unicode text.  Raises :class:`BadRequest` saying why
    not: not JSON at all, ``NaN``/``Infinity``, a number out of range, a lone surrogate escape,
    nesting too deep for the parser."""
    if _orjson is not None:
        return orjson_loads(text)
    if _PLAIN_FIRST:
        return plain_loads(text)
    return stdlib_loads(text)


def dumps(value: Any) -> str:
    """JSON text, compact, UTF-8 characters kept as they are.  Raises ValueError for what is
    not JSON (NaN, infinities, a lone surrogate in a string) and TypeError for what JSON has no
    type for."""
    if _orjson is None:
        return stdlib_dumps(value)
    return orjson_dumps(value)


def loads_lenient(data: Union[str, bytes]) -> Any:
    """What ``json.loads`` reads (lone surrogate escapes, ``NaN``, a UTF-8 BOM or UTF-16 in
    bytes), for texts that are checked after: a SockJS frame, a JSON array of strings.  For
    strings and arrays of strings both backends give the same; other values may differ (orjson
    reads integers out of 64 bits as floats, and 1024 levels of nesting).  Raises ValueError
    (JSON's errors, UnicodeDecodeError) or RecursionError."""
    if _orjson is None:
        return json.loads(data)
    return orjson_loads_lenient(data)


Backend = Tuple[Callable[[str], Any], Callable[[Any], str], Callable[[Union[str, bytes]], Any]]


def backends() -> Dict[str, Backend]:
    """name -> (loads, dumps, loads_lenient) of every backend importable here (tests): "json"
    the reference, "json-plain" what :func:`loads` is on PyPy, "orjson" when installed."""
    found: Dict[str, Backend] = {"json": (stdlib_loads, stdlib_dumps, stdlib_loads_lenient),
                                 "json-plain": (plain_loads, stdlib_dumps, stdlib_loads_lenient)}
    if _orjson is not None:
        found["orjson"] = (orjson_loads, orjson_dumps, orjson_loads_lenient)
    return found


__all__ = ["BACKEND", "FAST_BRACKETS", "loads", "dumps", "loads_lenient", "lone_surrogate",
           "backends"]
