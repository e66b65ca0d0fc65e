"""RealTimeMagic in this process: the conn object of SPEC section 2, publishing from another
thread, and closers once however a session ends."""
import json
import threading
import time

import gevent
import pytest
import websocket

from realtimemagic import RealTimeMagic

from inprocess import in_thread, serving

pytestmark = pytest.mark.timeout(60)


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return condition()


def ws_connect(server, query=""):
    return websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket%s"
                                       % (server.address[1], query), timeout=5,
                                       header=["X-Test: yes"], cookie="flavour=oat")


def test_conn_carries_what_the_seed_promised():
    rtm = RealTimeMagic(prefix="/pubsub")
    seen = {}

    def opening(conn, conn_info):
        conn.state["opened"] = True
        conn.subscribe({"channel": "seed-style"})
        conn.subscribe("plain-style")

    def receiver(conn, message):
        seen.update(info=conn.info, channels=conn.channels, session_id=conn.session_id,
                    state=dict(conn.state), master=conn.master, message=message)
        conn.send({"you said": message})
        return False

    rtm.openings.append(opening)
    rtm.receivers.append(receiver)
    with serving(rtm) as server:
        def client():
            ws = ws_connect(server, "?token=abc&x=1")
            ws.send(json.dumps({"hello": "world"}))
            answer = json.loads(ws.recv())
            ws.close()
            return answer
        assert in_thread(client) == {"you said": {"hello": "world"}}
    info = seen["info"]
    assert info.ip == "127.0.0.1" and info.transport == "websocket-raw"
    assert info.query == {"token": "abc", "x": "1"} and info.cookies == {"flavour": "oat"}
    assert info.path == "/pubsub/websocket"
    assert seen["channels"] == ("seed-style", "plain-style")
    assert seen["state"] == {"opened": True} and seen["master"] is rtm
    assert seen["session_id"]


def test_publish_from_another_thread_never_blocks():
    rtm = RealTimeMagic()
    with serving(rtm) as server:
        def client():
            ws = ws_connect(server)
            ws.send(json.dumps({"action": "subscribe", "payload": {"channel": "t"}, "id": 1}))
            assert json.loads(ws.recv())["action"] == "subscribed"
            publisher = threading.Thread(target=lambda: [rtm.publish("t", n) for n in range(100)])
            publisher.start()
            publisher.join(5)
            got = [json.loads(ws.recv())["payload"]["message"] for _ in range(100)]
            ws.close()
            return got
        assert in_thread(client) == list(range(100))


def test_publish_refuses_a_bad_channel_name():
    with pytest.raises(ValueError):
        RealTimeMagic().publish("no spaces allowed", 1)


def test_closers_run_once_however_the_session_ends():
    rtm = RealTimeMagic(disconnect_delay=0.3, heartbeat_interval=5)
    closed = []
    rtm.closers.append(lambda conn: closed.append(conn.session_id))

    def closing_receiver(conn, message):
        if message == "close me":
            conn.close(4000, "as asked")
        return False

    rtm.receivers.append(closing_receiver)
    with serving(rtm) as server:
        port = server.address[1]

        def clients():
            ws = ws_connect(server)  # 1: the client closes
            ws.close()
            ws = ws_connect(server)  # 2: the server closes
            ws.send(json.dumps("close me"))
            ws.recv_data(control_frame=True)
            ws.close()
            ws = ws_connect(server)  # 3: the client vanishes without a close frame
            ws.sock.close()
            import requests  # 4: a polling client that never comes back
            requests.post("http://127.0.0.1:%d/pubsub/000/vanishing/xhr" % port, timeout=5)
        in_thread(clients)
        assert wait_until(lambda: len(closed) == 4, timeout=10), closed
        gevent.sleep(1.0)
        assert len(closed) == len(set(closed)) == 4
        assert not rtm.connections and len(rtm.channels) == 0


def test_a_client_publish_is_checked_once_and_passes_each_part_once(monkeypatch):
    """The publish path: the request handler checks the channel and looks its options up, the
    dispatcher runs the push traps and hands the message to the broker once, the broker hands it
    back once for the fan-out; the lifecycle (RealTimeMagic itself) is not on the path."""
    from realtimemagic.pubsub import protocol
    rtm = RealTimeMagic(prefix="/pubsub")
    calls = []

    def counting(name, function):
        def counted(*args, **kwargs):
            calls.append(name)
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(protocol, "channel_error", counting("check", protocol.channel_error))
    monkeypatch.setattr(rtm, "options_for", counting("options", rtm.options_for))
    monkeypatch.setattr(rtm, "publish", counting("public publish", rtm.publish))
    monkeypatch.setattr(rtm.broker, "publish", counting("broker", rtm.broker.publish))
    monkeypatch.setattr(rtm.channels, "publish", counting("fan-out", rtm.channels.publish))
    rtm.push_traps.append(counting("push trap", lambda conn, channel, message: None))
    with serving(rtm) as server:
        def client():
            ws = ws_connect(server)
            ws.send(json.dumps({"action": "subscribe", "id": 1, "payload": {"channel": "once"}}))
            assert json.loads(ws.recv())["action"] == "subscribed"
            calls.clear()
            ws.send(json.dumps({"action": "publish", "payload": {"channel": "once",
                                                                  "message": "m"}}))
            delivered, path = json.loads(ws.recv()), list(calls)
            ws.close()
            return delivered, path
        delivered, path = in_thread(client)
    assert delivered["payload"] == {"channel": "once", "message": "m"}
    assert path == ["check", "options", "push trap", "broker", "fan-out"]
