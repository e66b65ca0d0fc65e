"""Each of the seed's examples, served as written, over a real connection (raw WebSocket and
SockJS xhr-polling), behaving as the seed says."""
import time

import pytest
import websocket

from conftest import need, postgres_available

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

LOCAL = ("--host", "127.0.0.1")  # examples written with local=False bind all interfaces


def delivery(channel, message):
    return {"action": "message", "payload": {"channel": channel, "message": message}}


def is_delivery(message):
    return message.get("action") == "message"


def test_simplest_is_a_pubsub_server(serve_module, connect):
    server = serve_module("examples.simplest:rtm")
    client = connect(server)
    client.subscribed("the_channel")
    client.publish("the_channel", "hello from the console")
    assert client.expect(is_delivery) == delivery("the_channel", "hello from the console")


def test_push_trap_rewrites_what_clients_publish(serve_module, connect):
    server = serve_module("examples.push_traps:rtm")
    listener, publisher = connect(server), connect(server)
    listener.subscribed("room")
    publisher.publish("room", "hi")
    assert listener.expect(is_delivery) == delivery("room", "[ hi ]")
    assert listener.nothing_within(0.5), "the original message must be dropped"


def test_on_open_subscribes_every_client_to_echo(serve_module, connect):
    server = serve_module("examples.on_open:rtm", *LOCAL)
    client, other = connect(server), connect(server)
    # A round trip: the opening hooks run before any message of the connection.
    client.subscribed("anything")
    other.publish("echo", "to everyone on echo")
    assert client.expect(is_delivery) == delivery("echo", "to everyone on echo")


def test_handling_messages_manually_echoes_plain_messages(serve_module, connect):
    server = serve_module("examples.echo:rtm")
    client = connect(server)
    client.send("hello")  # not a pub/sub request: goes to the echo receiver, no error
    assert client.expect(lambda m: m.get("action") in ("message", "error")) == \
        delivery("echo", "hello")
    client.send({"free": "form"})
    assert client.expect(is_delivery) == delivery("echo", {"free": "form"})


def test_authenticator_shape(serve_module, connect):
    server = serve_module("examples.authenticator:rtm")
    stranger = connect(server)
    stranger.subscribe("private:bob", request_id=1)
    assert stranger.recv() == {"action": "error", "id": 1, "payload": {
        "code": "forbidden", "reason": "This channel is private.", "channel": "private:bob"}}
    bob = connect(server, query="?user=bob")
    bob.subscribed("private:bob")
    bob.publish("private:bob", "note to self")
    assert bob.expect(is_delivery) == delivery("private:bob", "note to self")
    bob.publish("private:bob", "buy spam now", request_id=2)
    error = bob.expect(lambda m: m.get("action") == "error")
    assert error["payload"]["reason"] == "No spam, please." and error["id"] == 2


def test_authenticator_an_empty_user_owns_no_private_channel(serve_module, connect):
    server = serve_module("examples.authenticator:rtm")
    for query in ("?user=", ""):
        nobody = connect(server, query=query)
        nobody.subscribe("private:", request_id=1)
        assert nobody.recv() == {"action": "error", "id": 1, "payload": {
            "code": "forbidden", "reason": "This channel is private.", "channel": "private:"}}
        nobody.publish("private:", "hello", request_id=2)
        assert nobody.recv()["payload"]["code"] == "forbidden"


def test_stress_server_broadcasts_every_message_to_every_client(serve_module, connect):
    server = serve_module("examples.stress.server:rtm", *LOCAL)
    clients = [connect(server) for _ in range(3)]
    for client in clients:
        client.subscribed("sync")  # the opening hook (subscribe to echo) has run
    clients[0].send("one")
    clients[1].send("two")
    for client in clients:
        received = {client.expect(is_delivery)["payload"]["message"] for _ in range(2)}
        assert received == {"one", "two"}


def test_stress_base_is_a_plain_sockjs_broadcast(serve_module):
    server = serve_module("examples.stress.base:app")
    sockets = [websocket.create_connection(server.ws_url + "/pubsub/websocket", timeout=5)
               for _ in range(3)]
    sockets[0].send("plain text")
    assert [ws.recv() for ws in sockets] == ["plain text"] * 3
    for ws in sockets:
        ws.close()


def test_slow_hooks_run_in_parallel(serve_module, connect):
    """The seed: three messages whose hooks each wait in the database are answered after one
    wait, not three (5 s + overhead instead of 15 s; here 1 s instead of 3 s)."""
    dsn = "dbname=test host=127.0.0.1"
    need(postgres_available(dsn), "PostgreSQL at 127.0.0.1:5432 (database test) is needed")
    server = serve_module("examples.slow.server:rtm", *LOCAL,
                          env={"RTM_SLOW_DSN": dsn, "RTM_SLOW_SECONDS": "1"})
    client = connect(server)
    client.subscribed("echo")
    started = time.monotonic()
    for n in (1, 2, 3):
        client.send("%d->%s" % (n, time.time()))
    received = [client.expect(is_delivery, timeout=10) for _ in range(3)]
    elapsed = time.monotonic() - started
    assert sorted(m["payload"]["message"][0] for m in received) == ["1", "2", "3"]
    assert 0.9 < elapsed < 2.0, "three 1 s hooks took %.2f s" % elapsed
