"""Micro-benchmark of the JSON on a message's way through the server (not a test): microseconds
per call of each step, for the backends of realtimemagic.jsoncodec that this interpreter has,
next to the code before it (``json.dumps``/``json.loads`` with keywords).

    python bench/json_codec.py            # CPython: the stdlib and orjson columns
    pypy3 bench/json_codec.py             # PyPy: the stdlib columns (the JIT warms up first)

Columns: "before", the code jsoncodec replaced; "json", the standard library with the strict
decoder's hooks (the reference); "json-plain", plain json.loads and a walk for NaN (PyPy's
loads); "orjson" (CPython's, when installed).

Sizes are the typical ones: a chat message of about 100 bytes, and the pub/sub publish request
that carries it (about 200 bytes), in its SockJS frame.  The best of several repeats is shown;
the machine's noise is in the spread, so compare columns of one run.
"""
import argparse
import json
import os
import platform
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from realtimemagic import jsoncodec  # noqa: E402
from realtimemagic.sockjs import frames  # noqa: E402

CHAT = ("Hello everyone, a chat message of about a hundred bytes: caf\u00e9 and a smile "
        "\U0001F600 ok")
MESSAGE = {"user": "alice", "text": CHAT}
REQUEST = json.dumps({"action": "publish", "payload": {"channel": "chat:room1",
                                                         "message": MESSAGE}, "id": 17},
                     ensure_ascii=False)
FRAME = json.dumps([REQUEST])  # as sockjs-client sends it: escaped to ASCII
FRAME_BYTES = FRAME.encode("utf-8")
DELIVERY = {"action": "message", "payload": {"channel": "chat:room1", "message": MESSAGE}}
ENVELOPE = {"o": "3f2a9c", "c": "chat:room1", "m": MESSAGE, "s": 1234, "k": 56}
ENVELOPE_TEXT = json.dumps(ENVELOPE, ensure_ascii=False, separators=(",", ":"))

_ESCAPABLE = frames._ESCAPABLE


def old_quote(text):
    quoted = json.dumps(text, ensure_ascii=False)
    if _ESCAPABLE.search(quoted) is None:
        return quoted
    return _ESCAPABLE.sub(frames._escape, quoted)


def old_envelope(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def steps():
    """(step, {column: callable}): "before" the code this module replaced, then one column per
    backend of jsoncodec (loads, dumps, loads_lenient)."""
    backends = jsoncodec.backends()

    def each(index, argument):
        return {name: (lambda function=functions[index]: function(argument))
                for name, functions in backends.items()}

    yield "quote(100-byte message)", dict(
        {"before": lambda: old_quote(CHAT)},
        **{name: lambda: frames.quote(CHAT) for name in backends})
    if "orjson" in backends:  # what quote() would cost through orjson (it does not)
        yield "(orjson.dumps(message).decode(), not used)", {
            "orjson": lambda: jsoncodec._orjson.dumps(CHAT).decode("utf-8")}
    yield "decode_messages(frame, str)", dict({"before": lambda: json.loads(FRAME)},
                                              **each(2, FRAME))
    yield "decode_messages(frame, bytes)", dict({"before": lambda: json.loads(FRAME_BYTES)},
                                                **each(2, FRAME_BYTES))
    reference_loads, reference_dumps = backends["json"][0], backends["json"][1]
    yield "parse_json(publish request)", dict({"before": lambda: reference_loads(REQUEST)},
                                              **each(0, REQUEST))
    yield "encode(delivery)", dict({"before": lambda: reference_dumps(DELIVERY)},
                                   **each(1, DELIVERY))
    yield "encode_envelope", dict({"before": lambda: old_envelope(ENVELOPE)},
                                  **each(1, ENVELOPE))
    yield "decode_envelope", dict({"before": lambda: reference_loads(ENVELOPE_TEXT)},
                                  **each(0, ENVELOPE_TEXT))


def measure(function, number, repeat):
    for _ in range(3):  # warm-up (PyPy's JIT)
        timeit.timeit(function, number=number)
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    print("%s %s, the server uses %s; microseconds per call (best of %d x %d)" % (
        platform.python_implementation(), platform.python_version(),
        jsoncodec.BACKEND if jsoncodec.BACKEND == "orjson" or not jsoncodec._PLAIN_FIRST
        else "json-plain",
        arguments.repeat, arguments.number))
    print("request %d bytes, frame %d bytes" % (len(REQUEST.encode()), len(FRAME_BYTES)))
    columns = ["before"] + list(jsoncodec.backends())
    print("| step | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for step, functions in steps():
        figures = ["%.2f" % measure(functions[column], arguments.number, arguments.repeat)
                   if column in functions else "" for column in columns]
        print("| %s | %s |" % (step, " | ".join(figures)))


if __name__ == "__main__":
    main()
