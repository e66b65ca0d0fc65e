"""What the pieces of one connection cost, each alone: RSS and tracemalloc bytes per object.

    python bench/object_costs.py [--count 2000]

Each row is measured in a fresh interpreter (``--item NAME``), once plain (RSS from
``/proc/self/status``) and once under tracemalloc (one frame), as the difference between before
and after making ``--count`` of them and keeping them alive.  The greenlet rows block their
greenlets the way a connection's do (in a gevent socket's ``recv``, in ``Event.wait``); their
sockets (socket pairs) are made before the "before" reading, so the figure is the greenlet's.
Prints a Markdown table.  Standard library plus gevent and wsproto.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
from typing import Callable, Dict, List

ITEMS = {
    "greenlet in sock.recv": "an idle gevent Greenlet blocked reading a gevent socket",
    "greenlet in Event.wait": "an idle gevent Greenlet blocked in gevent.event.Event.wait",
    "gevent Event": "gevent.event.Event()",
    "gevent Semaphore": "gevent.lock.Semaphore()",
    "wsproto Connection": "wsproto.Connection(ConnectionType.SERVER)",
    "object with __dict__ (8 attributes)": "a plain class instance, 8 attributes set",
    "object with __slots__ (8 attributes)": "the same class with __slots__",
}


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Plain:
    def __init__(self) -> None:
        self.a = self.b = self.c = self.d = self.e = self.f = self.g = self.h = None


class Slotted:
    __slots__ = ("a", "b", "c", "d", "e", "f", "g", "h")

    def __init__(self) -> None:
        self.a = self.b = self.c = self.d = self.e = self.f = self.g = self.h = None


def measure(item: str, count: int, traced: bool) -> Dict:
    from gevent import monkey
    monkey.patch_all()
    import gc
    import socket
    import tracemalloc

    import gevent
    from gevent.event import Event
    from gevent.lock import Semaphore
    from wsproto.connection import Connection, ConnectionType

    # Everything the item needs that is not the item: imported, warmed up, made beforehand.
    pairs: List = []
    if item == "greenlet in sock.recv":
        pairs = [socket.socketpair() for _ in range(count)]
    events = [Event() for _ in range(count)] if item == "greenlet in Event.wait" else []
    warm = [gevent.spawn(gevent.sleep, 0), Event(), Semaphore(),
            Connection(ConnectionType.SERVER), Plain(), Slotted()]
    gevent.sleep(0.01)
    del warm
    keep: List = []
    makers: Dict[str, Callable[[int], object]] = {
        "greenlet in sock.recv": lambda i: gevent.spawn(pairs[i][0].recv, 1),
        "greenlet in Event.wait": lambda i: gevent.spawn(events[i].wait),
        "gevent Event": lambda i: Event(),
        "gevent Semaphore": lambda i: Semaphore(),
        "wsproto Connection": lambda i: Connection(ConnectionType.SERVER),
        "object with __dict__ (8 attributes)": lambda i: Plain(),
        "object with __slots__ (8 attributes)": lambda i: Slotted(),
    }
    make = makers[item]
    gc.collect()
    if traced:
        tracemalloc.start(1)
    before = tracemalloc.get_traced_memory()[0] if traced else rss()
    for i in range(count):
        keep.append(make(i))
    gevent.sleep(0.05)  # the greenlets run up to where they block
    gevent.sleep(0.05)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else rss()
    keep_list = len(keep) * 8 + 56 if traced else 0  # the list that keeps them, not theirs
    return {"bytes": (after - before - keep_list) / count}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--item", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 5000:
        parser.error("--count: 1 to 5000")
    if args.item:
        print(json.dumps(measure(args.item, args.count, args.traced)))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * args.count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * args.count + 100), hard))
    lines = ["%d of each, CPython %s (gevent and wsproto as installed)" % (
        args.count, sys.version.split()[0]), "",
        "| object | RSS bytes each | tracemalloc bytes each | what |",
        "| --- | ---: | ---: | --- |"]
    for item, what in ITEMS.items():
        figures = []
        for traced in (False, True):
            command = [sys.executable, os.path.abspath(__file__), "--item", item,
                       "--count", str(args.count)] + (["--traced"] if traced else [])
            output = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                    check=True).stdout
            figures.append(json.loads(output)["bytes"])
        lines.append("| %s | %.0f | %.0f | %s |" % (item, figures[0], figures[1], what))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
