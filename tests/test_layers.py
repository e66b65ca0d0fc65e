"""The layer order of STYLE.md, kept by a test over the import graph: nothing lower imports
anything higher, lazy imports inside functions included.  A module the map does not place fails
the test too: a new top-level module says where it belongs."""
import ast
import os
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from conftest import ROOT

PACKAGE = "realtimemagic"

#: Bottom to top.  Each entry: the layer's name and the top-level modules or packages in it.
#: Modules of one layer may import each other; a module may import any layer below its own.
LAYERS: List[Tuple[str, Tuple[str, ...]]] = [
    ("foundation", ("exceptions", "config", "backoff", "incidents", "http", "jsoncodec")),
    ("sockjs core", ("sockjs",)),
    ("transports", ("transports",)),
    ("runtime", ("runtime",)),
    ("pub/sub", ("pubsub",)),
    # routing: a SockJS session's requests between processes, over the broker's service;
    # pgdriver: the PostgreSQL driver these load.
    ("brokers, monitors, auth", ("brokers", "monitors", "auth", "routing", "pgdriver")),
    ("application", ("magic", "api", "stats", "cli", "contrib", "gunicorn", "publisher",
                     "echo", "__main__", "")),  # "": the package itself (lazy exports)
]


def layer_of(module: str) -> Optional[int]:
    """The index in LAYERS of ``realtimemagic.<top>...``; None for other packages and for a
    module LAYERS does not place."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    top = module[len(PACKAGE) + 1:].split(".")[0]
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    return None


def package_modules(root: str = ROOT) -> Iterator[Tuple[str, bool, str, str]]:
    """(module name, is a package, path, source) for every module of the package."""
    base = os.path.join(root, PACKAGE)
    for directory, _, files in os.walk(base):
        for filename in sorted(files):
            if not filename.endswith(".py"):
                continue
            path = os.path.join(directory, filename)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            with open(path, encoding="utf-8") as source:
                yield ".".join(parts), is_package, path, source.read()


def imports_of(module: str, is_package: bool, source: str,
               known: frozenset = frozenset()) -> Iterator[Tuple[str, int]]:
    """(imported module, line) for every import statement anywhere in ``source``: at the top,
    in functions, under ``if TYPE_CHECKING``.  ``from X import name`` counts as an import of
    ``X.name`` when that is a module of ``known``, else of ``X``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = target + "." + alias.name
                yield (submodule if submodule in known else target), node.lineno


def upward_imports(modules: List[Tuple[str, bool, str, str]]) -> Tuple[List[str], List[str]]:
    """The imports that go up the layers, and the modules LAYERS does not place."""
    known = frozenset(name for name, _, _, _ in modules)
    upward, unplaced = [], []
    for name, is_package, path, source in modules:
        own = layer_of(name)
        if own is None:
            unplaced.append(name)
            continue
        for imported, line in imports_of(name, is_package, source, known):
            layer = layer_of(imported)
            if layer is not None and layer > own:
                upward.append("%s:%d: %s (%s) imports %s (%s)" % (
                    os.path.relpath(path, ROOT), line, name, LAYERS[own][0], imported,
                    LAYERS[layer][0]))
    return upward, unplaced


def test_no_module_imports_a_higher_layer():
    upward, unplaced = upward_imports(list(package_modules()))
    assert not unplaced, "modules that tests/test_layers.py LAYERS does not place: %s" % unplaced
    assert not upward, "imports against the layer order of STYLE.md:\n" + "\n".join(upward)


# -- the test of the test ----------------------------------------------------------------------

def synthetic(modules: Dict[str, str]) -> List[Tuple[str, bool, str, str]]:
    return [(name.replace(".__init__", ""), name.endswith(".__init__"),
             os.path.join(ROOT, *name.split(".")) + ".py", source)
            for name, source in modules.items()]


@pytest.mark.parametrize("module,source", [
    # the runtime reaching up to the application, lazily, as it once did
    ("realtimemagic.runtime.server", "def start():\n    from ..api import InternalAPI\n"),
    ("realtimemagic.pubsub.handler", "from .. import auth\n"),
    ("realtimemagic.sockjs.session", "import realtimemagic.magic\n"),
    ("realtimemagic.transports.base", "from realtimemagic.runtime.endpoint import respond\n"),
    ("realtimemagic.brokers.base", "if TYPE_CHECKING:\n    from ..magic import RealTimeMagic\n"),
    ("realtimemagic.config", "from . import pubsub\n"),
])
def test_an_upward_import_fails_the_check(module, source):
    modules = synthetic({module: source, "realtimemagic.auth.__init__": "",
                         "realtimemagic.pubsub.__init__": ""})
    upward, unplaced = upward_imports(modules)
    assert len(upward) == 1 and not unplaced, upward
    assert module in upward[0]


@pytest.mark.parametrize("module,source", [
    ("realtimemagic.api", "from .runtime.endpoint import respond\nimport gevent\n"),
    ("realtimemagic.brokers.memory", "from ..pubsub.history import MemoryHistory\n"),
    ("realtimemagic.pubsub.handler", "from . import features, protocol\nfrom .. import config\n"),
    ("realtimemagic.auth.token", "from ..brokers import base\n"),  # one layer: siblings
])
def test_imports_down_or_across_pass(module, source):
    upward, unplaced = upward_imports(synthetic({module: source, "realtimemagic.config": ""}))
    assert upward == [] and unplaced == []


def test_a_module_without_a_layer_fails():
    _, unplaced = upward_imports(synthetic({"realtimemagic.newthing": "import os\n"}))
    assert unplaced == ["realtimemagic.newthing"]


def test_the_http_helpers_are_pure():
    """realtimemagic.http, below the transports, the runtime and the API, imports neither
    gevent nor wsproto (the standard library's email.utils brings socket, which is harmless)."""
    code = ("import sys, realtimemagic.http;"
            "print(','.join(m for m in ('gevent', 'greenlet', 'wsproto') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "", out.stdout


#: What a pure layer never imports: it does no I/O and holds no greenlet (STYLE.md, layers 1-2).
IO_MODULES = ("gevent", "greenlet", "socket", "select", "selectors", "ssl", "threading")


def io_imports(modules) -> List[Tuple[str, str, int]]:
    """(module, imported I/O module, line) for every import of IO_MODULES by ``modules``
    (name, is_package, source)."""
    found = []
    for name, is_package, source in modules:
        for imported, line in imports_of(name, is_package, source):
            if imported.split(".")[0] in IO_MODULES:
                found.append((name, imported, line))
    return found


def pure_modules() -> List[Tuple[str, bool, str]]:
    return [(name, is_package, source) for name, is_package, _, source in package_modules()
            if name.startswith((PACKAGE + ".transports", PACKAGE + ".sockjs"))]


def test_the_transports_and_the_core_are_pure():
    """Transports are framing, prelude and headers as functions of bytes and text; the socket,
    the writer and the receiving loop are the runtime's."""
    assert [name for name, _, _ in pure_modules() if ".transports" in name], "none found"
    assert io_imports(pure_modules()) == []
    code = ("import sys, pkgutil, importlib, realtimemagic.transports as t, realtimemagic.sockjs;"
            "[importlib.import_module('realtimemagic.transports.' + m.name)"
            " for m in pkgutil.iter_modules(t.__path__)];"
            "print(','.join(m for m in ('gevent', 'greenlet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "", out.stdout


@pytest.mark.parametrize("source", ["import gevent\n", "from gevent.event import Event\n",
                                    "import socket\n", "def f():\n    import greenlet\n"])
def test_an_io_import_in_a_transport_fails_the_check(source):
    assert io_imports([("realtimemagic.transports.newthing", False, source)]) != []
