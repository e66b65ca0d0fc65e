"""The internal API's ``POST /api/publish`` fed what hypothesis and a bounded raw-socket run can
think of: malformed, deeply nested, cut-short, invalid UTF-8, not strict JSON (NaN, lone
surrogates), wrong types.  Always 200 with a publish, or a 4xx with a JSON ``{"error": ...}``
body and nothing published; never a 500, never a traceback in the server log.

- Level 1 (hypothesis): the WSGI application called directly, every body once whole.
- Level 3 (real sockets): ``rtm-serve`` with its API listener, random bodies in random framings
  (exact, chunked, chunked and cut short, a Content-Length that promises more) for
  ``RTM_FUZZ_API_SECONDS`` (default 5 s), reproducible from ``RTM_FUZZ_SEED``.
"""
import io
import json
import os
import random
import re
import socket
import tempfile
import time
import urllib.request

import hypothesis.configuration
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from realtimemagic import RealTimeMagic
from realtimemagic.api import InternalAPI

from conftest import free_port, wait_for_port

SEED = int(os.environ.get("RTM_FUZZ_SEED", "90210"))
SECONDS = float(os.environ.get("RTM_FUZZ_API_SECONDS", "5"))
MAX_FRAME = 4000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 120)]

hypothesis.configuration.set_hypothesis_home_dir(
    os.path.join(tempfile.gettempdir(), "realtimemagic-hypothesis"))
SOME = settings(max_examples=300, deadline=None, database=None, print_blob=False,
                derandomize=not os.environ.get("RTM_HYPOTHESIS_EXPLORE"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DEEP = b"[" * 100000


# -- what a body may be -------------------------------------------------------------------

def strict(body: bytes):
    """The (channel, message) that the API must publish for ``body``, or None: written here
    independently of the server's parser, from RFC 8259 and the documented channel rule."""
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or "channel" not in value or "message" not in value:
        return None
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):  # 1e999, a lone surrogate
        return None
    channel = value["channel"]
    if not isinstance(channel, str) or not 1 <= len(channel) <= 200 or re.search(
            r"[\s\x00-\x1f\x7f-\x9f]", channel):
        return None
    return channel, value["message"]


def _refuse(constant):
    raise ValueError(constant)


texts = st.text(st.one_of(st.characters(), st.sampled_from("\ud800\udfff\"\\\x00\U0001F600")),
                max_size=12)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(texts, children, max_size=4)), max_leaves=8)
channels = st.one_of(st.sampled_from(["news", "chat:room", "c" * 200, "c" * 201, "", "a b",
                                      "\ud800", "caf\u00e9", "x\n"]), texts, values)
publish_bodies = st.builds(
    lambda channel, message, drop, ascii_only: json.dumps(
        {key: value for key, value in (("channel", channel), ("message", message))
         if key != drop}, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
    channels, values, st.sampled_from([None, None, None, "channel", "message"]), st.booleans())
bodies = st.one_of(
    publish_bodies,
    values.map(lambda value: json.dumps(value).encode("utf-8")),
    st.binary(max_size=80),
    st.tuples(publish_bodies, st.integers(0, 200)).map(lambda parts: parts[0][:parts[1]]),
    st.tuples(st.integers(1, 3000), st.sampled_from([b"[", b'{"a":', b'{"channel":"c",'
                                                     b'"message":['])).map(
        lambda parts: parts[1] * parts[0]),
    st.sampled_from([b'{"channel": "c", "message": NaN}', b'{"channel": "c", "message": 1e999}',
                     b'{"channel": "c", "message": "\\ud800"}', b'{"channel": "c", "message": '
                     b'"\xed\xa0\x80"}', b'\xef\xbb\xbf{"channel": "c", "message": 1}',
                     b'{"channel": "c", "message": 1}\x00', b'"' + b"x" * 5000 + b'"']),
)


# -- level 1: the WSGI application ----------------------------------------------------------

@pytest.fixture(scope="module")
def api():
    rtm = RealTimeMagic()  # max_frame_size 256 KiB: 100,000 brackets are read, and refused
    return rtm, InternalAPI(rtm)


def call(application, body: bytes, content_length: bool = True):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/publish", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(body), "SERVER_PROTOCOL": "HTTP/1.1"}
    if content_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    answer["body"] = b"".join(application(environ, start_response))
    return answer


@SOME
@given(bodies, st.booleans())
@example(DEEP, True)
@example(b'{"channel": "c", "message": ' + b"[" * 100000, True)
@example(b'{"channel": "c", "message": -Infinity}', False)
@example(b'{"\\udc00": 1, "channel": "c", "message": 1}', True)
@example(b'{"channel": "c", "message": "%s"}' % (b"x" * 256 * 1024), True)
def test_every_body_is_published_or_refused_with_a_4xx(api, body, content_length):
    rtm, application = api
    limit = rtm.settings.max_frame_size
    before = rtm.counters["published"]
    answer = call(application, body, content_length)
    published = rtm.counters["published"] - before
    expected = strict(body) if len(body) <= limit else None
    if expected is not None:
        assert answer["status"] == 200 and published == 1, (body, answer)
        return
    assert answer["status"] == (413 if len(body) > limit else 400), (body, answer)
    assert answer["headers"]["Content-Type"] == "application/json"
    error = json.loads(answer["body"])["error"]
    assert isinstance(error, str) and error and published == 0


@pytest.mark.parametrize("body,reason", [
    (DEEP, "nested too deeply"),
    (b'{"channel": "c", "message": NaN}', "NaN is not a JSON value"),
    (b'{"channel": "c", "message": [Infinity]}', "Infinity is not a JSON value"),
    (b'{"channel": "c", "message": "a\\ud800b"}', "lone surrogate"),
    (b'{"channel": "\\ud800", "message": 1}', "lone surrogate"),
    (b'{"channel": "c", "message": "\xff"}', "not UTF-8"),
    (b'{"channel": 5, "message": 1}', "channel must be a string"),
    (b'{"channel": "c"}', "expected a JSON object"),
    (b'["c", 1]', "expected a JSON object"),
    (b"", "not JSON"),
], ids=["deep", "nan", "infinity", "surrogate-message", "surrogate-channel", "not-utf8",
        "channel-type", "no-message", "array", "empty"])
def test_each_kind_of_bad_body_says_what_is_wrong(api, body, reason):
    answer = call(api[1], body)
    assert answer["status"] == 400 and reason in json.loads(answer["body"])["error"]


# -- level 3: a real server, raw sockets ----------------------------------------------------

def random_body(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return json.dumps({"channel": rng.choice(["news", "c" * 201, "", "a b"]),
                           "message": rng.choice([1, "x", [1, {"a": None}], "\u00e9"])}
                          ).encode("utf-8")
    if kind < 0.45:
        return rng.choice([b'{"channel": "news", "message": NaN}',
                           b'{"channel": "news", "message": "\\udbff"}',
                           b'{"channel": "news", "message": 1e400}',
                           b'{"channel": "news", "message": "\xed\xa0\x80"}',
                           b'{"channel": "\\ud800", "message": 1}',
                           b'{"channel": 1, "message": 1}', b"null", b"[]", b'"x"'])
    if kind < 0.6:
        return rng.choice([b"[", b'{"a":', b'{"channel":"news","message":[']) * rng.choice(
            [10, 5000, 100000])
    if kind < 0.8:
        return rng.randbytes(rng.randrange(60))
    body = json.dumps({"channel": "news", "message": "y" * rng.randrange(MAX_FRAME)}).encode()
    return body[:rng.randrange(len(body) + 1)] if rng.random() < 0.5 else body


def random_request(rng: random.Random) -> bytes:
    body = random_body(rng)
    head = [b"POST /api/publish HTTP/1.1", b"Host: 127.0.0.1"]
    framing = rng.choice(["exact", "exact", "exact", "chunked", "chunked-short", "short"])
    if framing == "exact":
        head.append(b"Content-Length: %d" % len(body))
    elif framing.startswith("chunked"):
        head.append(b"Transfer-Encoding: chunked")
        chunks = [body[i:i + 700] for i in range(0, len(body), 700)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
        if framing == "chunked":
            body += b"0\r\n\r\n"
        else:  # the body ends early, mid-chunk or between chunks
            body = body[:rng.randrange(len(body) + 1)]
    else:  # a Content-Length that promises more than comes
        head.append(b"Content-Length: %d" % (len(body) + rng.randrange(1, 100)))
    head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def exchange(port: int, data: bytes) -> bytes:
    """Send a request, end our side (a cut-short body ends there), read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered and closed before reading everything
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                return answer
            answer += chunk


def problem_with(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    if not match:
        return "not an HTTP answer: %r" % answer[:200]
    status = int(match.group(1))
    if status == 200:
        return None if json.loads(body) == {"published": True} else "200 with %r" % body[:200]
    if status not in (400, 413):
        return "status %d: %r" % (status, body[:300])
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return "%d without a JSON error body: %r" % (status, body[:200])
    return None if isinstance(error, str) and error else "%d with %r" % (status, body[:200])


def test_fuzz_the_api_over_real_sockets(start_server):
    api_port = free_port()
    server = start_server("realtimemagic.magic:RealTimeMagic", "--api-port", str(api_port),
                          "--max-frame-size", str(MAX_FRAME),
                          "--max-message-size", str(MAX_FRAME // 2))
    wait_for_port(api_port, server.process)
    rng = random.Random("api-%d" % SEED)
    deadline = time.monotonic() + SECONDS
    problems, cases = [], 0
    while time.monotonic() < deadline and len(problems) < 5:
        request = random_request(rng)
        answer = exchange(api_port, request)
        cases += 1
        problem = problem_with(answer)
        if problem:
            problems.append("case %d (seed %d): %s\n  sent %r" % (
                cases, SEED, problem, request[:300]))
    print("\n%d API cases in %.0f s (seed %d)" % (cases, SECONDS, SEED))
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % api_port, timeout=10) as reply:
        assert reply.status == 200
    assert server.process.poll() is None, server.log()[-3000:]
    assert not problems, "\n".join(problems)
    assert "Traceback" not in server.log(), server.log()[-5000:]
    assert cases > 20
