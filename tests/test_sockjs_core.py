"""Level 1: the pure SockJS core, with a fake clock, and its isolation from gevent."""
import json
import subprocess
import sys

import pytest

from realtimemagic.exceptions import BadRequest, IllegalTransition, OutboxFull
from realtimemagic.sockjs import frames
from realtimemagic.sockjs.frames import Close, OutgoingMessage, decode_messages, render
from realtimemagic.sockjs.registry import SessionRegistry
from realtimemagic.sockjs.routing import Route, resolve
from realtimemagic.sockjs.session import TRANSITIONS, Move, Outbox, State


class FakeReceiver:
    def __init__(self):
        self.wakeups = 0

    def wakeup(self):
        self.wakeups += 1

    def offer(self, message):
        return False


class TakingReceiver(FakeReceiver):
    """A receiver that writes a message at once while it is willing (a WebSocket with an
    empty socket buffer)."""

    def __init__(self):
        super().__init__()
        self.taken = []
        self.willing = True

    def offer(self, message):
        if self.willing:
            self.taken.append(message.text)
        return self.willing


def make_registry(closed=None, **limits):
    return SessionRegistry(heartbeat_interval=25.0, disconnect_delay=5.0,
                           outbox_max_frames=limits.get("frames", 100),
                           outbox_max_bytes=limits.get("bytes", 10000),
                           on_closed=(closed.append if closed is not None else None))


def test_core_does_not_import_gevent():
    code = ("import sys, realtimemagic.sockjs, realtimemagic.config;"
            "bad = [m for m in ('gevent', 'socket', 'wsproto') if m in sys.modules];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "gevent" not in out.stdout.split(","), out.stdout


def test_quote_escapes_what_browsers_mangle_and_nothing_else():
    assert frames.quote("abc") == '"abc"'
    assert frames.quote("w\u00f6rld") == '"w\u00f6rld"'
    assert frames.quote("\u2028\u200c\ufff0\x01") == '"\\u2028\\u200c\\ufff0\\u0001"'
    assert json.loads(frames.quote("\u2028\ud800")) == "\u2028\ud800"


def test_outgoing_message_is_encoded_once():
    message = OutgoingMessage("x" * 10)
    first = message.quoted
    assert message.quoted is first


def test_render_frames():
    assert render(frames.OPEN) == "o"
    assert render(frames.HEARTBEAT) == "h"
    assert render([OutgoingMessage("a"), OutgoingMessage('b"')]) == 'a["a","b\\""]'
    assert render(Close(3000, "Go away!")) == 'c[3000,"Go away!"]'


@pytest.mark.parametrize("payload,expected", [
    ('["a","b"]', ["a", "b"]), ("[]", []), (b'["\\u00e9"]', ["\u00e9"]),
])
def test_decode_messages(payload, expected):
    assert decode_messages(payload) == expected


@pytest.mark.parametrize("payload,reason", [
    ("", "Payload expected."), ('["a', "Broken JSON encoding."), ("[1]", "Broken JSON encoding."),
    ('{"a":1}', "Broken JSON encoding."), (b"\xff\xfe[", "Broken JSON encoding."),
])
def test_decode_messages_refuses(payload, reason):
    with pytest.raises(BadRequest) as error:
        decode_messages(payload)
    assert str(error.value) == reason


def test_decode_single_string_only_when_allowed():
    assert decode_messages('"x"', allow_single=True) == ["x"]
    with pytest.raises(BadRequest):
        decode_messages('"x"')


def test_decoder_fed_byte_by_byte_never_accepts_a_prefix():
    payload = '["hello","w\u00f6rld"]'.encode("utf-8")
    for end in range(1, len(payload)):
        with pytest.raises(BadRequest):
            decode_messages(payload[:end])
    assert decode_messages(payload) == ["hello", "w\u00f6rld"]
    with pytest.raises(BadRequest):
        decode_messages(payload + b"]")


def test_first_receiver_opens_then_gets_queued_messages():
    closed = []
    registry = make_registry(closed)
    session = registry.create("s1", now=0.0)
    receiver = FakeReceiver()
    pending, finished = session.attach(receiver, 0.0)
    assert (pending, finished) == (["o"], False)
    assert session.state is State.OPEN
    session.send(OutgoingMessage("hi"))
    assert receiver.wakeups == 1
    pending, finished = session.pull(1.0)
    assert [render(f) for f in pending] == ['a["hi"]'] and not finished


def test_second_receiver_is_told_another_connection_is_open():
    session = make_registry().create("s", 0.0)
    session.attach(FakeReceiver(), 0.0)
    pending, finished = session.attach(FakeReceiver(), 0.0)
    assert pending == [Close(2010, "Another connection still open")] and finished


def test_interrupted_receiver_closes_with_1002_and_later_receivers_see_it():
    closed = []
    session = make_registry(closed).create("s", 0.0)
    receiver = FakeReceiver()
    session.attach(receiver, 0.0)
    session.detach(receiver, 1.0, interrupted=True)
    assert session.state is State.CLOSING and closed == [session]
    pending, finished = session.attach(FakeReceiver(), 2.0)
    assert pending == [Close(1002, "Connection interrupted")] and finished


def test_close_gives_queued_messages_then_close_frame():
    session = make_registry().create("s", 0.0)
    receiver = FakeReceiver()
    session.attach(receiver, 0.0)
    session.send(OutgoingMessage("last"))
    assert session.close(3000, "Go away!")
    pending, finished = session.pull(0.5)
    assert [render(f) for f in pending] == ['a["last"]', 'c[3000,"Go away!"]'] and finished
    assert not session.send(OutgoingMessage("too late"))
    assert not session.close()


def test_expiry_after_disconnect_delay_and_on_closed_once():
    closed = []
    registry = make_registry(closed)
    session = registry.create("s", 0.0)
    receiver = FakeReceiver()
    session.attach(receiver, 0.0)
    session.detach(receiver, 10.0)
    assert registry.sweep(14.9) == []
    assert registry.sweep(15.0) == [session]
    assert session.state is State.CLOSED and closed == [session]
    assert registry.get("s") is None and len(registry) == 0
    assert registry.sweep(100.0) == [] and closed == [session]


def test_heartbeat_is_raised_by_the_sweep_for_an_idle_receiver():
    registry = make_registry()
    session = registry.create("s", 0.0)
    receiver = FakeReceiver()
    session.attach(receiver, 0.0)
    registry.sweep(24.0)
    assert receiver.wakeups == 0
    registry.sweep(25.0)
    assert receiver.wakeups == 1
    assert session.pull(25.0) == (["h"], False)
    assert session.pull(25.1) == ([], False)


def test_attached_session_never_expires():
    registry = make_registry()
    session = registry.create("s", 0.0)
    session.attach(FakeReceiver(), 0.0)
    registry.sweep(1000.0)
    assert session.state is State.OPEN


def test_outbox_bounds_close_the_session_with_4001():
    closed = []
    session = make_registry(closed, frames=3).create("s", 0.0)
    session.attach(FakeReceiver(), 0.0)
    for _ in range(3):
        session.send(OutgoingMessage("m"))
    with pytest.raises(OutboxFull):
        session.send(OutgoingMessage("m"))
    assert session.close_frame == Close(4001, "Client too slow") and closed == [session]
    pending, finished = session.pull(0.0)
    assert [render(f) for f in pending] == ['a["m","m","m"]', 'c[4001,"Client too slow"]']


def test_outbox_byte_bound():
    outbox = Outbox(max_frames=100, max_bytes=10)
    outbox.push(OutgoingMessage("12345"))
    outbox.push(OutgoingMessage("12345"))
    with pytest.raises(OutboxFull):
        outbox.push(OutgoingMessage("1"))
    assert len(outbox.take()) == 2 and outbox.size == 0


# -- the transition table, move by move: each test spells out what the move does in each state,
# and checks that the session went where TRANSITIONS says.

def session_in(state, attached):
    """A session in ``state``, with a receiver attached or not (a NEW one never has one)."""
    closed = []
    session = make_registry(closed).create("s", 0.0)
    receiver = FakeReceiver()
    if state is not State.NEW:
        session.attach(receiver, 0.0)
        session.send(OutgoingMessage("queued"))
        if state in (State.CLOSING, State.CLOSED):
            session.close(3001, "bye")
        if state is State.CLOSED:
            session.expire()
        if not attached:
            session.detach(receiver, 1.0)
    assert session.state is state
    return session, (receiver if attached and state is not State.NEW else None)


def check_table(session, before, move, after):
    assert TRANSITIONS[(before, move)][0] is after
    assert session.state is after


@pytest.mark.parametrize("state,after,frames_out,finished", [
    (State.NEW, State.OPEN, ["o"], False),
    (State.OPEN, State.OPEN, ['a["queued"]'], False),
    (State.CLOSING, State.CLOSING, ['a["queued"]', 'c[3001,"bye"]'], True),
    (State.CLOSED, State.CLOSED, ['c[3000,"Go away!"]'], True),
])
def test_attach_table(state, after, frames_out, finished):
    session, _ = session_in(state, attached=False)
    pending, done = session.attach(FakeReceiver(), 2.0)
    assert [render(f) for f in pending] == frames_out and done is finished
    check_table(session, state, Move.ATTACH, after)
    if state is State.CLOSING:
        assert session.expires_at == 2.0 + session.disconnect_delay  # seen: lives on a while


@pytest.mark.parametrize("state", [State.OPEN, State.CLOSING, State.CLOSED])
def test_attach_refuses_a_second_receiver_in_every_state(state):
    session, _ = session_in(state, attached=True)
    assert session.attach(FakeReceiver(), 2.0) == ([Close(2010, "Another connection still open")],
                                                   True)
    assert session.state is state


@pytest.mark.parametrize("state,interrupted,after,expires", [
    (State.OPEN, False, State.OPEN, True),
    (State.OPEN, True, State.CLOSING, True),
    (State.CLOSING, True, State.CLOSING, True),
    (State.CLOSED, True, State.CLOSED, False),
])
def test_detach_table(state, interrupted, after, expires):
    session, receiver = session_in(state, attached=True)
    session.detach(receiver, 2.0, interrupted=interrupted)
    assert session.receiver is None
    assert (session.expires_at == 2.0 + session.disconnect_delay) is expires
    if interrupted and state is State.OPEN:
        assert session.close_frame == Close(1002, "Connection interrupted")
    assert session.state is after
    assert TRANSITIONS[(state, Move.DETACH)][0] is state  # detaching alone never moves


@pytest.mark.parametrize("state,after,frames_out,finished", [
    (State.OPEN, State.OPEN, ['a["queued"]'], False),
    (State.CLOSING, State.CLOSING, ['a["queued"]', 'c[3001,"bye"]'], True),
    (State.CLOSED, State.CLOSED, ['c[3001,"bye"]'], True),
])
def test_pull_table(state, after, frames_out, finished):
    session, _ = session_in(state, attached=True)
    pending, done = session.pull(2.0)
    assert [render(f) for f in pending] == frames_out and done is finished
    check_table(session, state, Move.PULL, after)


@pytest.mark.parametrize("state,after,queued", [
    (State.NEW, State.NEW, False), (State.OPEN, State.OPEN, True),
    (State.CLOSING, State.CLOSING, False), (State.CLOSED, State.CLOSED, False),
])
def test_send_table(state, after, queued):
    session, _ = session_in(state, attached=False)
    before = len(session.outbox)
    assert session.send(OutgoingMessage("more")) is queued
    assert len(session.outbox) == before + (1 if queued else 0)
    check_table(session, state, Move.SEND, after)


@pytest.mark.parametrize("state,after,closed", [
    (State.NEW, State.NEW, False), (State.OPEN, State.CLOSING, True),
    (State.CLOSING, State.CLOSING, False), (State.CLOSED, State.CLOSED, False),
])
def test_close_table(state, after, closed):
    session, receiver = session_in(state, attached=state is not State.NEW)
    wakeups = receiver.wakeups if receiver else 0
    assert session.close(3002, "again") is closed
    assert (session.close_frame == Close(3002, "again")) is closed
    if receiver is not None:
        assert receiver.wakeups == wakeups + (1 if closed else 0)
    check_table(session, state, Move.CLOSE, after)


@pytest.mark.parametrize("state", list(State))
def test_expire_table(state):
    session, _ = session_in(state, attached=False)
    session.expire()
    assert len(session.outbox) == 0 and session.expires_at is None
    check_table(session, state, Move.EXPIRE, State.CLOSED)


def test_on_closed_runs_once_when_a_session_leaves_open():
    for leave in (lambda s: s.close(), lambda s: s.expire(),
                  lambda s: s.detach(s.receiver, 1.0, interrupted=True)):
        closed = []
        session = make_registry(closed).create("s", 0.0)
        session.attach(FakeReceiver(), 0.0)
        leave(session)
        session.expire()
        assert closed == [session]


def test_moves_missing_from_the_table_raise():
    missing = [(state, move) for state in State for move in Move
               if (state, move) not in TRANSITIONS]
    assert missing == [(State.NEW, Move.DETACH), (State.NEW, Move.PULL)]
    session = make_registry().create("s", 0.0)
    with pytest.raises(IllegalTransition):
        session.pull(0.0)
    with pytest.raises(IllegalTransition, match="cannot detach a new session"):
        session._move(Move.DETACH, 0.0, False)
    assert isinstance(IllegalTransition("x"), AssertionError)


def test_every_effect_in_the_table_exists():
    from realtimemagic.sockjs.session import Session
    for _, effect in TRANSITIONS.values():
        assert callable(getattr(Session, effect))


@pytest.mark.parametrize("path,route", [
    ("", Route("greeting")), ("/", Route("greeting")), ("/info", Route("info")),
    ("/iframe.html", Route("iframe")), ("/iframe-a.b_c.html", Route("iframe")),
    ("/websocket", Route("raw_websocket")),
    ("/000/abc/xhr", Route("xhr", "000", "abc")),
    ("/000/abc/websocket", Route("websocket", "000", "abc")),
    ("/a.b/abc/xhr", None), ("/000/a.b/xhr", None), ("//abc/xhr", None),
    ("/000/abc/nope", None), ("/iframe.htm", None),
])
def test_routing(path, route):
    assert resolve(path) == route


def test_a_message_is_offered_first_and_never_overtakes_a_queued_one():
    registry = make_registry()
    session = registry.create("s", 0.0)
    receiver = TakingReceiver()
    session.attach(receiver, 0.0)
    assert session.send(OutgoingMessage("one")) is True
    assert receiver.taken == ["one"] and len(session.outbox) == 0 and receiver.wakeups == 0
    receiver.willing = False  # the socket is full: queued, and the receiver woken
    session.send(OutgoingMessage("two"))
    receiver.willing = True
    session.send(OutgoingMessage("three"))  # "two" waits: not offered, queued behind it
    assert receiver.taken == ["one"] and receiver.wakeups == 2
    frames_, finished = session.pull(1.0)
    assert [message.text for message in frames_[0]] == ["two", "three"] and not finished
