"""Plain pub/sub behind a load balancer (haproxy.cfg, nginx.conf here), and the client's own
address.

    rtm-serve examples.deploy.app:rtm --port 9000 --broker redis://127.0.0.1:6379/0
    rtm-serve examples.deploy.app:rtm --port 9010 --broker redis://127.0.0.1:6379/0

Behind a proxy, ``conn.info.ip`` is the proxy's address; the proxy adds the client's to the
X-Forwarded-For header (haproxy.cfg: ``option forwardfor``; nginx.conf:
``$proxy_add_x_forwarded_for``), which is in ``conn.info.headers``.  Anybody can send an
X-Forwarded-For of their own, so :func:`client_ip` believes only what the proxies in
TRUSTED_PROXIES added: it walks the header from its end, over the trusted proxies.

A client that sends ``{"action": "whoami", "id": 1}`` is answered (to itself only)::

    {"action": "whoami", "id": 1, "payload": {"ip": "<the client's address>",
     "peer": "<the address that connected to the instance>",
     "forwarded_for": "<the X-Forwarded-For header, or null>",
     "instance": <the instance's port>, "transport": "<transport>"}}

Every other request that is not pub/sub gets the usual ``bad_request`` error.
"""
from realtimemagic import RealTimeMagic
from realtimemagic.exceptions import RequestRefused

#: The load balancers' addresses, whose X-Forwarded-For is believed.
TRUSTED_PROXIES = {"127.0.0.1", "::1"}


def client_ip(conn_info, trusted=TRUSTED_PROXIES):
    """The client's address: the peer's, or when the peer is a trusted proxy, the last address
    of X-Forwarded-For that is not a trusted proxy."""
    address = conn_info.ip
    forwarded = conn_info.headers.get("x-forwarded-for")
    if address not in trusted or not forwarded:
        return address
    for hop in reversed([part.strip() for part in forwarded.split(",")]):
        address = hop
        if hop not in trusted:
            break
    return address


def whoami(conn, message):
    if not (isinstance(message, dict) and message.get("action") == "whoami"):
        raise RequestRefused("bad_request", "unknown action")
    reply = {"action": "whoami", "payload": {
        "ip": client_ip(conn.info), "peer": conn.info.ip,
        "forwarded_for": conn.info.headers.get("x-forwarded-for"),
        "instance": conn.master.settings.port, "transport": conn.info.transport}}
    if "id" in message:
        reply["id"] = message["id"]
    conn.send(reply)
    return False


rtm = RealTimeMagic()
rtm.receivers.append(whoami)

if __name__ == '__main__':
    rtm.start()
