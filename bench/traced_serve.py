"""rtm-serve under tracemalloc, for bench/idle_memory.py.

    python bench/traced_serve.py OUT examples.stress.base:app --port 9000

Starts tracemalloc (one frame per allocation), then runs the command line as ``rtm-serve``
does.  Each SIGUSR1 writes ``OUT.<n>.snapshot`` (a tracemalloc snapshot, after a full
collection) and then ``OUT.<n>.json`` (the greenlets alive, by type, and the traced total),
``n`` counting from 1: the JSON file appears last, so a reader waits for it.
"""
import gc
import json
import os
import signal
import sys
import tracemalloc


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]
    tracemalloc.start(1)
    from realtimemagic import cli
    cli.patch_all()  # gevent's monkey patching first, as rtm-serve does
    import gevent
    import greenlet

    count = [0]

    def dump() -> None:
        count[0] += 1
        gc.collect()
        kinds: dict = {}
        for obj in gc.get_objects():
            if isinstance(obj, greenlet.greenlet):
                name = type(obj).__name__
                kinds[name] = kinds.get(name, 0) + 1
        snapshot = tracemalloc.take_snapshot()
        path = "%s.%d" % (out, count[0])
        snapshot.dump(path + ".snapshot")
        traced, _peak = tracemalloc.get_traced_memory()
        with open(path + ".json.tmp", "w") as f:
            json.dump({"greenlets": sum(kinds.values()), "by_type": kinds,
                       "traced": traced}, f)
        os.rename(path + ".json.tmp", path + ".json")

    gevent.signal_handler(signal.SIGUSR1, dump)
    cli.main(argv)


if __name__ == "__main__":
    main()
