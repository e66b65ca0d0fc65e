"""The publishing instance of bench/brokers.py: a client sends
``{"burst": n, "channels": [...]}`` and this instance publishes n messages, round-robin over the
channels, as fast as it can, from a greenlet of its own (so that what is measured is the
broker's path, not a WebSocket client's); it answers ``{"published": n, "seconds": s}``."""
import time

import gevent

from realtimemagic import RealTimeMagic

YIELD_EVERY = 100  # messages published between two chances for the broker's greenlets to run

rtm = RealTimeMagic()


def burst(conn, message):
    if not (isinstance(message, dict) and "burst" in message):
        return None
    gevent.spawn(_publish, conn, int(message["burst"]), list(message["channels"]))
    return False


def _publish(conn, count, channels):
    started = time.monotonic()
    for n in range(count):
        rtm.publish(channels[n % len(channels)], n)
        if n % YIELD_EVERY == 0:
            gevent.sleep(0)
    conn.send({"published": count, "seconds": time.monotonic() - started})


rtm.receivers.append(burst)
