"""Every timeout, size and count the server uses is in realtimemagic/config.py, written once:
a setting, or a fixed value (``config.FIXED``), both in docs/settings.md.  Elsewhere a module may
name one (``CLOSE_TIMEOUT = FIXED.websocket_close_timeout``) but not write its value."""
import ast
import os

import pytest

from conftest import ROOT
from realtimemagic import config

PACKAGE = os.path.join(ROOT, "realtimemagic")

#: Numbers that are no limit: the exit status of a usage error, the protocols' default ports.
NOT_LIMITS = {("cli.py", "USAGE_ERROR"), ("brokers/nats_connection.py", "DEFAULT_PORT"),
              ("brokers/redis_urls.py", "SENTINEL_PORT")}

#: Parameter names that say a keyword is a limit.
LIMIT_WORDS = ("timeout", "interval", "size", "delay", "limit", "max", "min", "ttl", "backoff",
               "latency", "refresh", "seconds", "burst", "rate", "probes")


def is_number(node: ast.AST) -> bool:
    """A literal number, an expression of them (64 * 1024) or a tuple of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return is_number(node.operand)
    if isinstance(node, ast.BinOp):
        return is_number(node.left) and is_number(node.right)
    if isinstance(node, ast.Tuple):
        return bool(node.elts) and all(is_number(element) for element in node.elts)
    return False


def written_limits(relative: str, source: str):
    """(line, what) for every number written as a module constant or as the default of a
    keyword named like a limit (0 and None, 'no wait' and 'no bound', are not limits)."""
    tree = ast.parse(source)
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if (isinstance(target, ast.Name) and is_number(value)
                    and (relative, target.id) not in NOT_LIMITS):
                yield node.lineno, "%s = %s" % (target.id, ast.unparse(value))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = list(zip(positional[len(positional) - len(arguments.defaults):],
                             arguments.defaults))
            pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d]
            for argument, default in pairs:
                if (is_number(default) and not (isinstance(default, ast.Constant) and default.value == 0)
                        and any(word in argument.arg.lower() for word in LIMIT_WORDS)):
                    yield node.lineno, "%s(%s=%s)" % (node.name, argument.arg,
                                                     ast.unparse(default))


def package_sources():
    for directory, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, PACKAGE).replace(os.sep, "/")
                with open(path, encoding="utf-8") as source:
                    yield relative, source.read()


def test_no_limit_is_written_outside_config():
    found = ["realtimemagic/%s:%d: %s" % (relative, line, what)
             for relative, source in package_sources() if relative != "config.py"
             for line, what in written_limits(relative, source)]
    assert not found, ("limits written outside realtimemagic/config.py (make them a setting or "
                       "a FixedValues field):\n" + "\n".join(found))


@pytest.mark.parametrize("source,caught", [
    ("CLOSE_TIMEOUT = 2.0\n", True),
    ("READ_SIZE = 64 * 1024\n", True),
    ("PAUSE = (0.01, 1.0)\n", True),
    ("def f(send_timeout: float = 30.0): pass\n", True),
    ("class A:\n    def __init__(self, *, max_half_open=10000): pass\n", True),
    ("CLOSE_TIMEOUT = FIXED.websocket_close_timeout\n", False),
    ("GO_AWAY = (3000, 'Go away!')\n", False),  # a close code and its reason: no limit
    ("def shutdown(timeout=0.0): pass\n", False),
    ("def close(code=3000): pass\n", False),
])
def test_the_check_sees_a_written_limit(source, caught):
    assert bool(list(written_limits("x.py", source))) is caught


def test_every_fixed_value_is_documented_with_its_unit():
    table = config.fixed_values_table()
    for field in config.dataclasses.fields(config.FixedValues):
        assert field.metadata["help"] and field.metadata["unit"], field.name
        assert "`%s`" % field.name in table
    with open(os.path.join(ROOT, "docs", "settings.md"), encoding="utf-8") as page:
        assert table in page.read()
