"""The PostgreSQL driver of the broker and the monitor: psycopg2 where it loads (CPython, the
``postgresql`` extra installs psycopg2-binary), psycopg2cffi where it cannot (PyPy, where the
extra installs psycopg2cffi instead).  See docs/pypy.md.

Importing this module loads the driver; with psycopg2cffi it is registered as ``psycopg2`` (its
``compat.register()``), so that ``import psycopg2`` in an application works unchanged on PyPy.
``make_cooperative()`` installs psycogreen's gevent wait callback: psycogreen only needs
``extensions.set_wait_callback`` and the ``POLL_*`` constants, which psycopg2cffi has too.

psycopg2cffi lacks a few helpers of psycopg2.extensions; the ones we use are here, taken from
libpq itself where psycopg2 does that (``parse_dsn``, ``libpq_version``).
"""
import ctypes
import ctypes.util
import functools
from typing import Any, Dict

try:
    import psycopg2
    import psycopg2.extensions
    CFFI = False
except ImportError:
    try:
        from psycopg2cffi import compat
    except ImportError:
        raise ImportError("PostgreSQL needs its driver: pip install 'realtimemagic[postgresql]' "
                          "(psycopg2-binary on CPython, psycopg2cffi on PyPy)") from None
    compat.register()
    import psycopg2
    import psycopg2.extensions
    CFFI = True


def make_cooperative() -> bool:
    """Install psycogreen's gevent wait callback unless one is set; True when this call did."""
    if psycopg2.extensions.get_wait_callback() is not None:
        return False
    from psycogreen.gevent import patch_psycopg
    patch_psycopg()
    return True


def connect(dsn: str, **parameters: Any):
    """``psycopg2.connect(dsn, **parameters)``: the keywords win over the DSN's (psycopg2cffi
    takes a DSN or keywords, not both)."""
    if not CFFI:
        return psycopg2.connect(dsn, **parameters)
    return psycopg2.connect(make_dsn(**dict(parse_dsn(dsn), **parameters)))


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (what ``psycopg2.sql.Identifier`` writes)."""
    return '"%s"' % name.replace('"', '""')


def make_dsn(**parameters: Any) -> str:
    """A libpq ``key=value`` connection string."""
    return " ".join("%s=%s" % (key, _quote_value(str(value)))
                    for key, value in parameters.items() if value is not None)


def _quote_value(value: str) -> str:
    if value and not any(character in value for character in " \t\n\r\\'"):
        return value
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def parse_dsn(dsn: str) -> Dict[str, str]:
    """The parameters a DSN (``key=value`` string or ``postgresql://`` URL) sets, parsed by
    libpq; ``psycopg2.ProgrammingError`` when libpq refuses it."""
    if not CFFI:
        return psycopg2.extensions.parse_dsn(dsn)
    libpq = _libpq()
    error = ctypes.c_char_p()
    options = libpq.PQconninfoParse(dsn.encode("utf-8"), ctypes.byref(error))
    if not options:
        message = error.value.decode("utf-8", "replace").strip() if error.value else "bad DSN"
        if error.value:
            libpq.PQfreemem(error)
        raise psycopg2.ProgrammingError("invalid dsn: " + message)
    try:
        parsed = {}
        index = 0
        while options[index].keyword is not None:
            if options[index].val is not None:
                parsed[options[index].keyword.decode()] = options[index].val.decode("utf-8")
            index += 1
        return parsed
    finally:
        libpq.PQconninfoFree(options)


def libpq_version() -> int:
    """libpq's version as an integer: 150004 for 15.4."""
    if not CFFI:
        return psycopg2.extensions.libpq_version()
    return _libpq().PQlibVersion()


class _ConninfoOption(ctypes.Structure):
    _fields_ = [("keyword", ctypes.c_char_p), ("envvar", ctypes.c_char_p),
                ("compiled", ctypes.c_char_p), ("val", ctypes.c_char_p),
                ("label", ctypes.c_char_p), ("dispchar", ctypes.c_char_p),
                ("dispsize", ctypes.c_int)]


@functools.lru_cache(maxsize=None)
def _libpq() -> ctypes.CDLL:
    """libpq, the library psycopg2cffi is built on."""
    library = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
    library.PQconninfoParse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    library.PQconninfoParse.restype = ctypes.POINTER(_ConninfoOption)
    library.PQconninfoFree.argtypes = [ctypes.POINTER(_ConninfoOption)]
    library.PQfreemem.argtypes = [ctypes.c_void_p]
    library.PQlibVersion.restype = ctypes.c_int
    return library
