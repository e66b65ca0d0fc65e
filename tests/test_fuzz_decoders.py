"""Level 1, property-based: every decoder of what a client sends, and every encoder of what the
server sends, fed what hypothesis can think of.

- ``decode_messages`` (the SockJS send body / SockJS WebSocket frame): any JSON array of strings
  round-trips; anything else is refused with ``BadRequest`` and nothing else; fed byte by byte,
  every proper prefix is refused and the whole accepted.
- ``quote`` and ``render``: the JSON literal reads back as the text, and none of the characters
  that browsers mangle is ever written raw.
- ``decode_jsonp_send``: form-encoded ``d=<json>`` and raw bodies.
- ``Request.read_body``: never reads more than ``limit + 1`` bytes, refuses what is larger.
- ``callback_name``: accepts exactly ``[a-zA-Z0-9-_.]{1,32}``.
- The pub/sub protocol: ``parse_message`` never raises, ``parse_request`` raises nothing but
  ``ProtocolError``, valid requests parse to the right ``Request``, and ``channel_error``
  follows the documented rule (docs/protocol.md): 1 to 200 characters, no whitespace
  (``str.isspace``) and no control characters (Unicode category ``Cc``).

Example counts are bounded (the whole file runs in about 10 to 20 seconds) and the examples are
the same at each run (``RTM_HYPOTHESIS_EXPLORE=1`` draws new ones).
"""
import io
import json
import re
import unicodedata
from urllib.parse import quote as url_quote, urlencode

import os
import tempfile

import hypothesis.configuration
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from realtimemagic.exceptions import BadRequest, MessageTooLarge, ProtocolError
from realtimemagic.pubsub import protocol
from realtimemagic.sockjs import frames
from realtimemagic.sockjs.frames import Close, OutgoingMessage, decode_messages, quote, render
from realtimemagic.http import Request, callback_name
from realtimemagic.transports.eventsource import EventSource
from realtimemagic.transports.htmlfile import HtmlFile
from realtimemagic.transports.jsonp import JsonpPolling, decode_jsonp_send
from realtimemagic.transports.xhr import XhrPolling

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# Hypothesis keeps caches (and, on failure, patches) in a directory of its own: not in the tree.
hypothesis.configuration.set_hypothesis_home_dir(
    os.path.join(tempfile.gettempdir(), "realtimemagic-hypothesis"))

# Derandomized: every run draws the same examples, so a failure shows again on the next run and
# in CI; RTM_HYPOTHESIS_EXPLORE=1 draws new ones each run.
FEW = settings(max_examples=40, deadline=None, database=None, print_blob=False,
               derandomize=not os.environ.get("RTM_HYPOTHESIS_EXPLORE"),
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SOME = settings(FEW, max_examples=80)
MANY = settings(FEW, max_examples=150)

# The ranges sockjs-node escapes (and the protocol suite checks): written here independently of
# realtimemagic.sockjs.frames, as code points.
ESCAPED_RANGES = [(0x0000, 0x001F), (0xD800, 0xDFFF), (0x200C, 0x200F), (0x2028, 0x202F),
                  (0x2060, 0x206F), (0xFFF0, 0xFFFF)]


def escaped(character: str) -> bool:
    return any(low <= ord(character) <= high for low, high in ESCAPED_RANGES)


def as_read(text: str) -> str:
    """``text`` as a JSON reader gives it back: JSON strings are UTF-16, so a high surrogate
    followed by a low one (two code points in a Python str) reads back as one character; lone
    surrogates stay as they are."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


# -- strategies ---------------------------------------------------------------------------------

#: One character of the escaped ranges, surrogates included.
escapable_characters = st.one_of([st.integers(low, high).map(chr) for low, high in ESCAPED_RANGES])
#: Any code point at all, lone surrogates included, with the escaped ranges and JSON's own
#: special characters drawn often.
any_character = st.one_of(st.characters(exclude_categories=()), escapable_characters,
                          st.sampled_from('"\\/\x7f\x85\xa0\u2028\ufeff\U0001F600'))
any_text = st.text(any_character, max_size=40)
#: Text that UTF-8 can encode (no lone surrogates), which is what arrives in a real body.
encodable_text = st.text(st.one_of(st.characters(codec="utf-8"),
                                   st.sampled_from('"\\\x00\x1f\u2028\ufff0\U0001F600')),
                         max_size=40)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                         any_text)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(any_text, children, max_size=5)),
    max_leaves=10)
#: What RFC 8259 calls JSON: no NaN or infinity, no lone surrogate in any string.
strict_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(),
              st.floats(allow_nan=False, allow_infinity=False), encodable_text),
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(encodable_text, children, max_size=5)),
    max_leaves=10)

#: Text that looks like JSON more often than random text would.
jsonish_text = st.one_of(
    any_text,
    json_values.map(json.dumps),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.lists(st.sampled_from(['[', ']', '{', '}', '"', ',', ':', '\\', 'u', 'd8', '00', '1', 'e',
                              '-', '.', 'true', 'nul', ' ', '\n', 'a', '\u00e9', '\ud800']),
             max_size=30).map("".join),
    # nesting: shallow, and deep enough to exhaust the decoder's recursion
    st.tuples(st.integers(1, 3000), st.sampled_from(["[", '{"a":', '["a",'])).map(
        lambda parts: parts[1] * parts[0]),
)
#: Bytes, often almost a SockJS payload: cut, spliced, in another encoding.
jsonish_bytes = st.one_of(
    st.binary(max_size=60),
    st.lists(any_text).map(lambda texts: json.dumps(texts).encode("utf-16")),
    st.lists(encodable_text).map(lambda texts: json.dumps(texts, ensure_ascii=False)
                                 .encode("utf-8")),
    st.tuples(st.lists(encodable_text, min_size=1).map(
        lambda texts: json.dumps(texts, ensure_ascii=False).encode("utf-8")),
        st.integers(0, 200), st.binary(max_size=4)).map(
        lambda parts: parts[0][:parts[1]] + parts[2] + parts[0][parts[1]:]),
)

#: Nested a hundred thousand levels: the C JSON decoder recurses and Python gives up.
DEEP_ARRAY = "[" * 100000
DEEP_OBJECT = '{"a":' * 100000


# -- decode_messages --------------------------------------------------------------------------

@SOME
@given(st.lists(any_text, max_size=8), st.booleans(), st.sampled_from([None, (",", ":"), 2]))
def test_any_json_array_of_strings_round_trips(texts, ascii_only, layout):
    if isinstance(layout, tuple):
        payload = json.dumps(texts, ensure_ascii=ascii_only, separators=layout)
    else:
        payload = json.dumps(texts, ensure_ascii=ascii_only, indent=layout)
    # JSON strings are UTF-16: escaped (ensure_ascii) a surrogate pair reads back as one
    # character; written raw, the two code points stay two
    expected = [as_read(text) if ascii_only else text for text in texts]
    assert decode_messages(payload) == expected
    assert decode_messages(payload, allow_single=True) == expected
    if ascii_only:  # a body as it arrives: bytes (lone surrogates only travel escaped)
        assert decode_messages(payload.encode("ascii")) == expected


@FEW
@given(encodable_text)
def test_a_lone_string_is_a_message_only_when_allowed(text):
    assert decode_messages(json.dumps(text), allow_single=True) == [text]
    with pytest.raises(BadRequest):
        decode_messages(json.dumps(text))


def refused_or_array_of_strings(payload, allow_single):
    """The one promise of decode_messages on anything: a list of str, or BadRequest with one
    of sockjs-node's two reasons.  Any other exception fails the test."""
    try:
        decoded = decode_messages(payload, allow_single=allow_single)
    except BadRequest as error:
        assert str(error) in ("Payload expected.", "Broken JSON encoding.")
        return
    assert isinstance(decoded, list) and all(isinstance(item, str) for item in decoded)


@MANY
@given(jsonish_text, st.booleans())
def test_arbitrary_text_is_refused_with_bad_request_only(payload, allow_single):
    refused_or_array_of_strings(payload, allow_single)


@pytest.mark.parametrize("payload,allow_single", [
    (DEEP_ARRAY.encode("ascii"), False), (DEEP_OBJECT, False), (DEEP_ARRAY, True),
], ids=["xhr_send-body", "object", "websocket-message"])
def test_deep_nesting_is_refused_with_bad_request_only(payload, allow_single):
    """A 100 KB body of '[' is within max_frame_size (256 KiB): the server must refuse it as
    Broken JSON, not crash in the decoder."""
    refused_or_array_of_strings(payload, allow_single)


@MANY
@given(jsonish_bytes, st.booleans())
@example(b"\xef\xbb\xbf[]", False)  # a UTF-8 BOM
@example(b'["\xed\xa0\x80"]', False)  # a surrogate encoded raw (invalid UTF-8)
def test_arbitrary_bytes_are_refused_with_bad_request_only(payload, allow_single):
    refused_or_array_of_strings(payload, allow_single)


@SOME
@given(st.lists(encodable_text, max_size=6), st.booleans(), st.sampled_from([None, 1]),
       st.sampled_from([b"", b" \n"]))
def test_valid_payload_fed_byte_by_byte(texts, ascii_only, indent, space):
    """Every proper prefix refused, the whole accepted, trailing data refused (and trailing
    whitespace accepted: it is still one JSON text)."""
    payload = space + json.dumps(texts, ensure_ascii=ascii_only, indent=indent).encode("utf-8")
    for end in range(len(payload)):
        with pytest.raises(BadRequest):
            decode_messages(payload[:end])
    assert decode_messages(payload) == texts
    for trailer in (",", "]", "x", '"', "[]"):
        with pytest.raises(BadRequest):
            decode_messages(payload + trailer.encode("ascii"))
    assert decode_messages(payload + b" \r\n\t") == texts


# -- quote and render -------------------------------------------------------------------------

@MANY
@given(any_text)
@example("\ud800")
@example("\udfff\ud800")
@example("".join(chr(low) + chr(high) for low, high in ESCAPED_RANGES))
def test_quote_reads_back_and_escapes_the_mangled_ranges(text):
    literal = quote(text)
    assert json.loads(literal) == as_read(text)
    raw = [character for character in literal if escaped(character)]
    assert raw == [], "written raw: %r" % raw
    literal.encode("utf-8")  # no lone surrogate left: always encodable
    assert literal == json.dumps(text, ensure_ascii=False) or any(map(escaped, text))


@SOME
@given(st.lists(any_text, min_size=1, max_size=8))
def test_render_of_a_batch_reads_back_in_order(texts):
    batch = [OutgoingMessage(text) for text in texts]
    rendered = render(batch)
    assert rendered.startswith("a[") and rendered.endswith("]")
    expected = [as_read(text) for text in texts]
    assert json.loads(rendered[1:]) == expected
    assert not any(map(escaped, rendered))
    rendered.encode("utf-8")
    # what the server sends is what a client may send back
    assert decode_messages(rendered[1:]) == expected
    assert render(batch) == rendered  # the literals are cached, the result the same


@FEW
@given(st.integers(0, 4999), any_text)
def test_render_of_a_close_frame_reads_back(code, reason):
    rendered = render(Close(code, reason))
    assert rendered.startswith("c[")
    assert json.loads(rendered[1:]) == [code, as_read(reason)]
    assert not any(map(escaped, rendered))


def test_render_of_open_and_heartbeat():
    assert (render(frames.OPEN), render(frames.HEARTBEAT)) == ("o", "h")


@SOME
@given(st.lists(any_text, min_size=1, max_size=5), st.from_regex(r"\A[a-zA-Z0-9_.\-]{1,32}\Z"))
def test_transport_encodings_carry_a_batch_intact(texts, callback):
    """Each HTTP transport's bytes give back the frame, and no message can break out of its
    container: no raw newline in an SSE data line, no '<' inside an htmlfile script."""
    batch = [OutgoingMessage(text) for text in texts]
    frame_text = render(batch)

    xhr = XhrPolling().encode(batch, None).decode("utf-8")
    assert xhr == frame_text + "\n"

    sse = EventSource().encode(batch, None).decode("utf-8")
    assert sse.startswith("data: ") and sse.endswith("\r\n\r\n")
    data = sse[len("data: "):-4]
    assert "\r" not in data and "\n" not in data and "\x00" not in data
    assert re.sub("%(25|0D|0A|00)", lambda m: {"25": "%", "0D": "\r", "0A": "\n",
                                                "00": "\x00"}[m.group(1)], data) == frame_text

    html = HtmlFile().encode(batch, callback).decode("utf-8")
    assert html.startswith("<script>\np(") and html.endswith(");\n</script>\r\n")
    inner = html[len("<script>\np("):-len(");\n</script>\r\n")]
    assert "<" not in inner
    assert json.loads(inner) == frame_text

    jsonp = JsonpPolling().encode(batch, callback).decode("utf-8")
    assert jsonp.startswith("/**/" + callback + "(") and jsonp.endswith(");\r\n")
    assert json.loads(jsonp[len("/**/" + callback + "("):-len(");\r\n")]) == frame_text


# -- jsonp_send -------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


def post_request(content_type=None, query=""):
    environ = {"REQUEST_METHOD": "POST", "QUERY_STRING": query}
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    return Request(environ)


@SOME
@given(st.lists(any_text, max_size=6), st.sampled_from([FORM, FORM + "; charset=UTF-8"]),
       st.booleans())
def test_jsonp_send_form_body_round_trips(texts, content_type, other_fields):
    fields = [("d", json.dumps(texts))]
    if other_fields:
        fields = [("x", "1")] + fields + [("d", "ignored: the first d counts")]
    body = urlencode(fields).encode("ascii")
    assert decode_jsonp_send(post_request(content_type), body) == [as_read(t) for t in texts]


@SOME
@given(st.lists(encodable_text, max_size=6), st.sampled_from([None, "text/plain", "", FORM[:-1],
                                                              "application/json"]))
def test_jsonp_send_raw_body_round_trips(texts, content_type):
    body = json.dumps(texts, ensure_ascii=False).encode("utf-8")
    assert decode_jsonp_send(post_request(content_type), body) == texts


@pytest.mark.parametrize("body", [b"", b"d=", b"x=1", b"d"])
def test_jsonp_send_form_without_payload(body):
    with pytest.raises(BadRequest) as error:
        decode_jsonp_send(post_request(FORM), body)
    assert str(error.value) == "Payload expected."


@MANY
@given(st.one_of(jsonish_bytes,
                 jsonish_text.map(lambda text: ("d=" + url_quote(text, errors="surrogatepass"))
                                  .encode("ascii")),
                 st.lists(st.sampled_from([b"d=", b"&", b"%", b"%5B", b"%22", b"+", b"%ff",
                                           b"%ed%a0%80", b"=", b"d", b"%5D", b"\xff", b";"]),
                          max_size=12).map(b"".join)),
       st.sampled_from([FORM, None, "text/plain"]))
def test_jsonp_send_arbitrary_body_is_refused_with_bad_request_only(body, content_type):
    jsonp_send_refuses_or_decodes(body, content_type)


def jsonp_send_refuses_or_decodes(body, content_type):
    try:
        decoded = decode_jsonp_send(post_request(content_type), body)
    except BadRequest as error:
        assert str(error) in ("Payload expected.", "Broken JSON encoding.")
        return
    assert isinstance(decoded, list) and all(isinstance(item, str) for item in decoded)


@pytest.mark.parametrize("body,content_type", [(b"d=" + b"%5B" * 50000, FORM)], ids=["form"])
def test_jsonp_send_deep_nesting_is_refused_with_bad_request_only(body, content_type):
    jsonp_send_refuses_or_decodes(body, content_type)


# -- Request.read_body ----------------------------------------------------------------------

class CountingStream:
    """``wsgi.input`` that counts what is read from it, and refuses unbounded reads."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)
        self.read_total = 0
        self.largest_request = 0

    def read(self, size=-1):
        assert size is not None and size >= 0, "an unbounded read: read(%r)" % (size,)
        self.largest_request = max(self.largest_request, size)
        data = self.stream.read(size)
        self.read_total += len(data)
        return data


content_lengths = st.one_of(
    st.none(),                                   # absent: a chunked body
    st.just(""), st.just("  "),
    st.integers(-5, 400).map(str),
    st.integers(0, 400).map(lambda n: " %d " % n),
    st.integers(10 ** 15, 10 ** 30).map(str),    # absurdly large
    st.text(st.sampled_from("0123456789abx-+ .e"), min_size=1, max_size=6),
)


@MANY
@given(st.binary(max_size=400), st.integers(1, 300), content_lengths)
@example(b"x" * 11, 10, None)
@example(b"x" * 10, 10, None)
@example(b"x" * 11, 10, "11")
@example(b"x" * 100, 10, "5")
def test_read_body_never_reads_past_its_limit(body, limit, content_length):
    stream = CountingStream(body)
    environ = {"REQUEST_METHOD": "POST", "wsgi.input": stream}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    request = Request(environ)
    try:
        result = request.read_body(limit)
    except MessageTooLarge as error:
        result = error
    except BadRequest as error:
        assert str(error) == "Invalid Content-Length."
        result = error
    assert stream.read_total <= limit + 1 and stream.largest_request <= limit + 1

    declared = (content_length or "").strip()
    if not declared:  # chunked: read to the end, one byte over the limit at most
        if len(body) > limit:
            assert isinstance(result, MessageTooLarge)
        else:
            assert result == body
    elif re.fullmatch(r"[0-9]+", declared):
        length = int(declared)
        if length > limit:
            assert isinstance(result, MessageTooLarge)
            assert stream.read_total == 0  # refused on the header alone
        else:
            assert result == body[:length]
    elif re.fullmatch(r"-[0-9]+", declared):
        assert result == b""
    elif not isinstance(result, (BadRequest, MessageTooLarge)):
        assert isinstance(result, bytes) and len(result) <= limit


# -- callback_name --------------------------------------------------------------------------

CALLBACK = re.compile(r"\A[a-zA-Z0-9\-_.]{1,32}\Z")
callback_like = st.one_of(
    any_text,
    st.text(st.sampled_from("aZ09-_."), min_size=0, max_size=34),
    st.tuples(st.text(st.sampled_from("aZ09-_."), min_size=1, max_size=32),
              st.sampled_from(["\n", "\r", "\r\n", " ", "\x00", "(", "\u00e9", "%0A"])).map(
        "".join),
)


def accepted_callback(request):
    try:
        return callback_name(request)
    except BadRequest as error:
        assert str(error) in ('invalid "callback" parameter', '"callback" parameter required')
        return None


@MANY
@given(callback_like, st.sampled_from(["c", "callback"]))
@example("abc\n", "c")
@example("x" * 32 + "\n", "c")
def test_callback_name_accepts_exactly_the_documented_alphabet(name, parameter):
    request = post_request()
    request.query = {parameter: name}
    expected = name if CALLBACK.match(name) else None
    assert accepted_callback(request) == expected


@SOME
@given(callback_like.filter(lambda name: not any(0xD800 <= ord(c) <= 0xDFFF for c in name)))
@example("abc\n")
def test_callback_name_through_the_query_string(name):
    request = post_request(query="c=" + url_quote(name, safe=""))
    assert request.query["c"] == name
    assert accepted_callback(request) == (name if CALLBACK.match(name) else None)


def test_callback_name_required():
    assert accepted_callback(post_request(query="x=1")) is None
    assert accepted_callback(post_request(query="callback=a.b_c-1")) == "a.b_c-1"


# -- the pub/sub protocol -------------------------------------------------------------------

def documented_channel_problem(channel) -> bool:
    """docs/protocol.md: 1 to 200 characters, without whitespace, control characters or lone
    surrogates."""
    if not isinstance(channel, str):
        return True
    return not (1 <= len(channel) <= 200) or any(
        character.isspace() or unicodedata.category(character) in ("Cc", "Cs")
        for character in channel)


channel_like = st.one_of(
    any_text,
    st.text(st.sampled_from("ab:-_.\u00e9\U0001F600"), min_size=1, max_size=10),
    st.tuples(st.integers(195, 205), st.sampled_from(["", "\n", " ", "\x7f", "\u00a0"])).map(
        lambda parts: "c" * parts[0] + parts[1]),
    st.tuples(st.text(st.sampled_from("ab:"), min_size=1, max_size=5),
              st.sampled_from(["\n", "\r", "\t", " ", "\x0b", "\x0c", "\x1c", "\x1f", "\x7f",
                               "\x80", "\x85", "\x9f", "\xa0", "\u1680", "\u2000", "\u2028",
                               "\u3000", "\ufeff", "\u200b"]),
              st.text(st.sampled_from("ab:"), max_size=5)).map("".join),
    json_scalars,
)


@MANY
@given(channel_like)
@example("abc\n")
@example("c" * 200 + "\n")
@example("a\x80b")
@example("a\ud800")
def test_channel_error_agrees_with_the_documented_rule(channel):
    problem = protocol.channel_error(channel)
    assert (problem is not None) == documented_channel_problem(channel), (channel, problem)


@pytest.mark.parametrize("channel", [
    "abc\n",            # a trailing newline: "$" in the pattern matches before it
    "c" * 200 + "\n",   # ... which also lets 201 characters through
    "a\x80b",           # C1 control characters (Unicode category Cc)
    "a\x9fb",
], ids=["trailing-newline", "201-with-trailing-newline", "c1-x80", "c1-x9f"])
def test_channel_names_the_rule_refuses(channel):
    assert documented_channel_problem(channel)
    assert protocol.channel_error(channel) is not None, (
        "%r accepted as a channel name" % channel)


@pytest.mark.parametrize("channel", ["a", "c" * 200, "chat:room-1", "caf\u00e9", "\U0001F600",
                                     "a/b?c#d", "\u200b"])
def test_channel_names_the_rule_accepts(channel):
    assert protocol.channel_error(channel) is None


@MANY
@given(jsonish_text.filter(lambda text: not protocol._lone_surrogate(text)))
@example("1" * 5000)  # past Python's int digit limit
@example('{"id": 1, "m": NaN}')
@example('["\\ud800"]')
def test_parse_message_never_raises(text):
    """On valid Unicode text (check_text refuses the rest first): strict JSON parsed, the
    rest kept as text with a reason; nothing parsed ever holds what cannot be sent."""
    message, problem, request_id = protocol.parse_message(text)
    if problem is None:
        assert json.dumps(message) == json.dumps(json.loads(text))
        protocol.encode(message)  # strict: raises on NaN, infinities, lone surrogates
        assert request_id == protocol.request_id_of(message)
    else:
        assert message == text and problem.startswith("message is not JSON")
        assert request_id is None or protocol.encode(request_id)


ids = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans(), st.floats(),
                st.lists(st.integers(), max_size=2), st.just({}))
request_like = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"action": st.one_of(st.sampled_from(protocol.ACTIONS), json_scalars)},
        optional={"payload": st.one_of(json_values, st.fixed_dictionaries(
            {}, optional={"channel": channel_like, "message": json_values,
                          "since": st.one_of(json_values, st.fixed_dictionaries(
                              {}, optional={"offset": st.one_of(st.integers(), json_scalars),
                                            "epoch": json_scalars}))})),
            "id": ids}),
)


@MANY
@given(request_like)
def test_parse_request_raises_nothing_but_protocol_error(message):
    """What the pub/sub handler does with any JSON value: only requests get parsed, and a bad
    one is a ProtocolError naming bad_request."""
    message = json.loads(json.dumps(message))  # as it arrives: JSON, through the decoder
    if not protocol.is_pubsub_request(message):
        return
    try:
        request = protocol.parse_request(message)
    except ProtocolError as error:
        assert error.code == protocol.BAD_REQUEST and error.reason
        assert error.request_id is None or error.request_id == message.get("id")
        return
    assert request.action == message["action"]
    assert not documented_channel_problem(request.channel)


valid_channels = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Zs", "Zl", "Zp"),
                                       exclude_characters="\x85\x1c\x1d\x1e\x1f\t\n\x0b\x0c\r"),
                         min_size=1, max_size=60).filter(
    lambda channel: not documented_channel_problem(channel))
valid_ids = st.one_of(st.none(), st.integers(), st.text(max_size=20))


positions = st.one_of(st.none(), st.tuples(st.integers(min_value=0), st.text(max_size=10)))


@SOME
@given(st.sampled_from(protocol.ACTIONS), valid_channels, strict_json_values, valid_ids,
       positions)
@example("subscribe", "c" * 200, None, 1, (0, ""))
def test_valid_requests_parse_to_the_right_request(action, channel, message, request_id,
                                                   position):
    payload = {"channel": channel}
    if action == "publish":
        payload["message"] = message
    since = None
    if action == "subscribe" and position is not None:  # recovery from a history position
        payload["since"] = {"offset": position[0], "epoch": position[1]}
        since = protocol.Position(*position)
    request = {"action": action, "payload": payload}
    if request_id is not None:
        request["id"] = request_id
    text = json.dumps(request)
    parsed, problem, _ = protocol.parse_message(text)
    assert problem is None and protocol.is_pubsub_request(parsed)
    expected_message = json.loads(json.dumps(message)) if action == "publish" else None
    assert protocol.parse_request(parsed) == protocol.Request(
        action, channel, expected_message, request_id, since)
