"""Level 1: the NATS protocol the NATS broker speaks, without I/O (realtimemagic/brokers/
nats_protocol.py): the parser fed whole, byte by byte and with trailing data; the commands; the
channel-to-subject mapping; and the URL forms."""
import json
import os
import re
import tempfile

import hypothesis.configuration
import pytest
from hypothesis import given, settings, strategies as st

from realtimemagic.brokers import nats_protocol as protocol
from realtimemagic.brokers.nats_connection import NatsUrl
from realtimemagic.exceptions import ConfigError
from realtimemagic.pubsub.protocol import channel_error

hypothesis.configuration.set_hypothesis_home_dir(
    os.path.join(tempfile.gettempdir(), "realtimemagic-hypothesis"))
FEW = settings(max_examples=200, deadline=None, database=None, derandomize=True)

SERVER_BYTES = (b'INFO {"server_id":"x","max_payload":1048576}\r\n'
                b"PING\r\n"
                b"MSG rtm.news 1 5\r\nhello\r\n"
                b"MSG rtm.a%2Eb 22 inbox.1 4\r\n\r\n\r\n\r\n"  # a payload holding CRLFs
                b"+OK\r\n"
                b"pong\r\n"  # operations are case-insensitive
                b"-ERR 'Authorization Violation'\r\n")
EXPECTED = [protocol.Info({"server_id": "x", "max_payload": 1048576}),
            protocol.Control("PING"),
            protocol.Msg("rtm.news", 1, b"hello"),
            protocol.Msg("rtm.a%2Eb", 22, b"\r\n\r\n"),
            protocol.Control("+OK"),
            protocol.Control("PONG"),
            protocol.Control("-ERR", "Authorization Violation")]


def test_parser_whole():
    assert protocol.Parser().feed(SERVER_BYTES) == EXPECTED


def test_parser_byte_by_byte():
    parser, events = protocol.Parser(), []
    for index in range(len(SERVER_BYTES)):
        events += parser.feed(SERVER_BYTES[index:index + 1])
    assert events == EXPECTED


def test_parser_keeps_trailing_data_for_later():
    parser = protocol.Parser()
    assert parser.feed(SERVER_BYTES + b"MSG rtm.x 3 10\r\nfirst") == EXPECTED
    assert parser.feed(b" part") == []
    assert parser.feed(b"\r\nPI") == [protocol.Msg("rtm.x", 3, b"first part")]
    assert parser.feed(b"NG\r\n") == [protocol.Control("PING")]


@given(st.lists(st.integers(min_value=1, max_value=len(SERVER_BYTES) - 1), max_size=8))
@FEW
def test_parser_any_split(cuts):
    parser, events, start = protocol.Parser(), [], 0
    for cut in sorted(set(cuts)) + [len(SERVER_BYTES)]:
        events += parser.feed(SERVER_BYTES[start:cut])
        start = cut
    assert events == EXPECTED


@pytest.mark.parametrize("data, problem", [
    (b"MSG rtm.x 1 5\r\nhelloXX", "CRLF"),
    (b"MSG rtm.x 1\r\n", "malformed MSG"),
    (b"MSG rtm.x one 5\r\n", "malformed MSG"),
    (b"MSG rtm.x 1 -5\r\n", "MSG of -5 bytes"),
    (b"MSG rtm.x 1 2000\r\n", "MSG of 2000 bytes"),
    (b"INFO {not json\r\n", "malformed INFO"),
    (b"HELLO\r\n", "unknown operation"),
    (b"INFO " + b"x" * (protocol.MAX_CONTROL_LINE + 1), "longer than"),
])
def test_parser_refuses_what_it_does_not_understand(data, problem):
    with pytest.raises(protocol.NatsProtocolError, match=problem):
        protocol.Parser(max_payload=1000).feed(data)


def test_commands():
    assert protocol.pub("rtm.a", b"x\r\ny") == b"PUB rtm.a 4\r\nx\r\ny\r\n"
    assert protocol.sub("rtm.a", 7) == b"SUB rtm.a 7\r\n"
    assert protocol.unsub(7) == b"UNSUB 7\r\n"
    line = protocol.connect("realtimemagic-listener", "me", "p@ss")
    assert line.startswith(b"CONNECT ") and line.endswith(b"\r\n")
    options = json.loads(line[len(b"CONNECT "):])
    assert options["verbose"] is False and options["headers"] is False
    assert (options["user"], options["pass"]) == ("me", "p@ss")
    assert json.loads(protocol.connect("x", token="t0k")[8:])["auth_token"] == "t0k"


# -- subjects -----------------------------------------------------------------------------------

# What a NATS subject may hold, as the broker uses it: tokens of printable ASCII other than the
# separator and the wildcards, none empty.
SUBJECT = re.compile(r"[!-~]+")
channels = st.text(min_size=1, max_size=200).filter(lambda channel: channel_error(channel) is None)


def decoded(subject: str) -> str:
    """The test's own inverse of the mapping: %XX are UTF-8 bytes."""
    data = subject[len("rtm."):].encode("ascii")
    return re.sub(rb"%([0-9A-F]{2})", lambda match: bytes([int(match.group(1), 16)]),
                  data).decode("utf-8")


@given(channels)
@FEW
def test_every_channel_is_a_valid_subject_that_gives_the_channel_back(channel):
    subject = protocol.subject_for(channel)
    tokens = subject.split(".")
    assert tokens[0] == "rtm" and len(tokens) == 2
    assert SUBJECT.fullmatch(tokens[1]) and not set(tokens[1]) & set("*>")
    assert len(subject.encode("ascii")) <= 4 + 3 * 800
    assert decoded(subject) == channel


@pytest.mark.parametrize("channel, subject", [
    ("news", "rtm.news"), ("chat:room-1_a", "rtm.chat:room-1_a"), ("a.b", "rtm.a%2Eb"),
    ("a%2Eb", "rtm.a%252Eb"), ("*", "rtm.%2A"), (">", "rtm.%3E"), ("caf\u00e9", "rtm.caf%C3%A9"),
])
def test_subjects_are_readable_and_distinct(channel, subject):
    assert protocol.subject_for(channel) == subject


# -- URLs ---------------------------------------------------------------------------------------

def test_urls():
    url = NatsUrl("nats://127.0.0.1")
    assert url.servers == [("127.0.0.1", 4222)] and url.user is None and url.token is None
    url = NatsUrl("nats://me:p%40ss@a:4223,b,[::1]:4224")
    assert url.servers == [("a", 4223), ("b", 4222), ("::1", 4224)]
    assert (url.user, url.password) == ("me", "p@ss")
    assert NatsUrl("nats://s3cret@host:1").token == "s3cret"
    with pytest.raises(ConfigError, match="bad port"):
        NatsUrl("nats://host:port")
