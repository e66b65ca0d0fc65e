"""Level 1: realtimemagic.jsoncodec, both backends side by side.  The standard library's is the
reference; orjson's (when installed: CPython) must read, write and refuse the same on every
strict-JSON edge case, the reasons included.  Both are called directly, so the reference runs
here even where orjson is what the server uses."""
import enum
import json
import sys
import uuid

import pytest

from realtimemagic import jsoncodec
from realtimemagic.exceptions import BadRequest
from realtimemagic.pubsub import protocol
from realtimemagic.sockjs import frames

BACKENDS = jsoncodec.backends()
REFERENCE = BACKENDS["json"]
OTHERS = sorted(name for name in BACKENDS if name != "json")


def outcome(function, argument):
    """What a call gives: ("value", result), or ("raises", exception type, message)."""
    try:
        result = function(argument)
    except (BadRequest, ValueError, TypeError, RecursionError) as error:
        kind = type(error)
        if issubclass(kind, ValueError) and not issubclass(kind, UnicodeError):
            kind = ValueError  # json.JSONDecodeError and orjson's errors are ValueErrors
        return ("raises", kind, str(error) if isinstance(error, BadRequest) else "")
    return ("value", type(result).__name__, repr(result))


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


#: Texts for loads: what RFC 8259 allows, what it does not, and where the backends' parsers are
#: known to differ (numbers, surrogates, nesting, a BOM).
TEXTS = [
    '{"action":"publish","payload":{"channel":"c","message":"hi"},"id":1}',
    "[]", "{}", "0", "-0", "1", "-1", "1.5", "-0.0", "1e2", "1E-2", "0.1", "1e308", "5e-324",
    "1e-400", "1.7976931348623157e308", '"a"', "true", "false", "null", " [1, 2] \n",
    "NaN", "-NaN", "Infinity", "-Infinity", "[1, Infinity]", '{"deep": [1, {"x": -Infinity}]}',
    "1e999", "-1e999", "1E400", "1" + "0" * 400, "1" * 5000,
    str(2 ** 63 - 1), str(2 ** 63), str(2 ** 64 - 1), str(2 ** 64), str(-2 ** 63),
    str(-2 ** 63 - 1), "[%d, 1.5]" % 2 ** 70, '{"n": 123456789012345678901234567890}',
    '"1234567890123456789012345"', "12345678901234567890.5",
    '"\\ud800"', '"a\\ud800b"', '"\\udc00"', '{"\\udc00": 1}', '"\\ude00\\ud83d"',
    '"\\ud83d\\ude00"', '"\\uD83D\\uDE00"', '"\\ud83d"', '["\\ud800", 1]',
    '{"a": 1, "a": 2}', '{"a": {"b": 1}, "a": [2]}',
    '"\\u0000\\u001f\\u2028\\u00e9"', '"caf\u00e9 \U0001F600"', '"a\x00"', '"\x7f"', '"\\/"',
    "[1,]", "{,}", "01", "1.", ".5", "+1", "[1 2]", "[]x", "", " ", '"', "\ufeff[]",
    '{"a" : 1 }', '{"a":1,}', "'a'", "[\"\\x41\"]",
    "[" * 100 + "]" * 100, "[" * 255 + "]" * 255, "[" * 256 + "]" * 256,
    "[" * 100000, '{"a":' * 100000,
] + ([] if sys.implementation.name == "pypy" else [
    # orjson's limit, over the reference's on CPython (about 1000 levels less the stack's
    # depth).  PyPy's limit is near 1024: one frame more or less decides, as it always has.
    "[" * 1024 + "]" * 1024, "[" * 1025 + "]" * 1025])


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("text", TEXTS, ids=[repr(text[:30]) for text in TEXTS])
def test_loads_agrees_with_the_reference(name, text):
    assert outcome(BACKENDS[name][0], text) == outcome(REFERENCE[0], text)


def as_frame(function, payload):
    """What decode_messages keeps of loads_lenient's answer: a string or a list of strings;
    anything else (a number, a value nested past a limit, an error) is a broken frame."""
    try:
        value = function(payload)
    except (ValueError, RecursionError):
        return "broken"
    if isinstance(value, str) or (isinstance(value, list)
                                  and all(isinstance(item, str) for item in value)):
        return value
    return "broken"


FRAMES = TEXTS + [
    '["a", "\\ud800"]', '["\\udc00\\ud800"]', '["caf\u00e9", "\\u2028"]', '[" NaN"]',
    '["raw \ud800"]',
    '["a", NaN]', '["%d"]' % 2 ** 70, '[%d]' % 2 ** 70,
]


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("text", FRAMES, ids=[repr(text[:30]) for text in FRAMES])
def test_loads_lenient_agrees_with_the_reference_on_frames(name, text):
    """A SockJS frame is a JSON array of strings: lone surrogate escapes read (sockjs-node's
    JSON.parse reads them), the rest as json.loads has it, bytes in UTF-8, UTF-16 or with a
    BOM as json.loads detects them."""
    payloads = [text, text.encode("utf-8", "surrogatepass"), text.encode("utf-16", "surrogatepass"),
                b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass"), b'["\xff"]',
                b'["\xed\xa0\x80"]']
    for payload in payloads:
        assert as_frame(BACKENDS[name][2], payload) == as_frame(REFERENCE[2], payload), payload


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("text,reason", [
    ("NaN", "not JSON: NaN is not a JSON value"),
    ('{"deep": [1, {"x": -Infinity}]}', "not JSON: -Infinity is not a JSON value"),
    ("1e999", "not JSON: number 1e999 is out of range"),
    ('"a\\ud800b"', "not JSON: a lone surrogate (\\ud800 to \\udfff without its pair) is not "
                    "valid Unicode"),
    ('{"\\udc00": 1}', "not JSON: a lone surrogate (\\ud800 to \\udfff without its pair) is "
                       "not valid Unicode"),
    ("[" * 100000, "not JSON: nested too deeply"),
    ("[1,]", "not JSON"),
])
def test_loads_says_why_not(name, text, reason):
    with pytest.raises(BadRequest) as error:
        BACKENDS[name][0](text)
    assert str(error.value) == reason


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_big_integers_are_read_exactly(name):
    """orjson reads integers out of 64 bits as floats: not here."""
    for number in (2 ** 63, 2 ** 64, -2 ** 63 - 1, 2 ** 70, -10 ** 30):
        assert BACKENDS[name][0]("[%d]" % number) == [number]
        assert type(BACKENDS[name][0]("[%d]" % number)[0]) is int


class Colour(enum.Enum):
    RED = "red"


class Number(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


#: Values for dumps, with the same intent.
VALUES = [
    {"action": "message", "payload": {"channel": "c", "message": {"user": "a", "text": "hi"}}},
    None, True, False, 0, -1, 1.5, -0.0, 0.1, 1e16, 1e22, 1e308, 5e-324, 123456789.0,
    2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63, -2 ** 63 - 1, 2 ** 100,
    float("nan"), float("inf"), float("-inf"), [1, float("nan")], {"a": [float("inf")]},
    "a\ud800b", "\udfff", ["\ud83d\ude00"], {"\udfff": 1}, "\U0001F600",
    "caf\u00e9", "\x00\x1f\x7f\"\\/\b\f\n\r\t\u2028\u2029\ufeff", "null", ["null", None],
    {1: 2}, {None: 1, True: 2, 1.5: 3}, {"a": 1, 2: "b"}, (1, 2), [], {},
    {1, 2}, b"bytes", object(), Colour.RED, Number.ONE, Text("x"), {Text("k"): Text("v")},
    uuid.UUID("f81d4fad-7dec-11d0-a765-00a0c91e6bf6"),
    nested(100), nested(253), nested(254), nested(255), nested(500),
]


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("value", VALUES, ids=[ascii(value)[:30] for value in VALUES])
def test_dumps_agrees_with_the_reference(name, value):
    assert outcome(BACKENDS[name][1], value) == outcome(REFERENCE[1], value)


def test_dumps_of_every_character_agrees_with_the_reference():
    """Every code point, surrogates included, one string each and all in one."""
    characters = [chr(point) for point in range(sys.maxunicode + 1)]
    for name in OTHERS:
        dumps = BACKENDS[name][1]
        for character in characters[:0x3000:7] + characters[0xD7F0:0xE010] + characters[-20:]:
            assert outcome(dumps, character) == outcome(REFERENCE[1], character), ascii(character)
        text = "".join(character for character in characters
                       if not 0xD800 <= ord(character) <= 0xDFFF)
        assert dumps(text) == REFERENCE[1](text)
        assert dumps([text, {text: text}]) == REFERENCE[1]([text, {text: text}])


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("value,error", [
    (float("nan"), ValueError), ({"a": [float("inf")]}, ValueError), ("a\ud800b", ValueError),
    ({"\udfff": 1}, ValueError), ({1, 2}, TypeError), (b"x", TypeError),
])
def test_dumps_refuses_what_is_not_json(name, value, error):
    with pytest.raises(error):
        BACKENDS[name][1](value)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_dumps_is_compact_and_keeps_characters(name):
    assert BACKENDS[name][1]({"a": [1, "\u00e9\U0001F600"], "b": None}) == \
        '{"a":[1,"\u00e9\U0001F600"],"b":null}'


def test_floats_are_the_same_numbers_if_not_the_same_bytes():
    """The one known difference: orjson writes 1e-7 where Python writes 1e-07."""
    for name in OTHERS:
        for number in (1e-5, 1e-7, 1.5e-9, 2e-300, 1e16, 1e100):
            assert json.loads(BACKENDS[name][1](number)) == number


def test_the_server_uses_the_fastest_backend_here():
    expected = "orjson" if "orjson" in BACKENDS else "json"
    assert jsoncodec.BACKEND == expected
    assert protocol.parse_json("[1]") == [1]


def test_quote_is_what_json_dumps_writes_before_the_escapes():
    """quote() takes json.dumps(text, ensure_ascii=False)'s function directly: same bytes."""
    for point in list(range(0x3000)) + list(range(0xD700, 0xE100)) + list(range(0xFFE0, 0x10000)):
        text = "a" + chr(point) + "\"b"
        expected = json.dumps(text, ensure_ascii=False)
        assert frames.quote(text) == frames._ESCAPABLE.sub(frames._escape, expected)
