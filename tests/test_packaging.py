"""The package users get: the sdist and the wheel built as PyPI would build them, the wheel
installed with every extra into a fresh virtual environment outside the checkout, then used from
another directory: every module imports from the environment (not from the checkout), and
``rtm-serve`` serves pub/sub, the demo page and the files it refers to.  The other tests import
the checkout, so a module or a static file missing from the wheel shows only here."""
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from typing import Set

import pytest

from conftest import ROOT, free_port, need, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PACKAGE = "realtimemagic"


def checkout_files() -> Set[str]:
    """Every file of the package in the checkout, relative to ROOT: git's list of the files it
    tracks or does not ignore when there is one (so that caches do not count)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                             PACKAGE], cwd=ROOT, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        return {name for name in listed.stdout.decode().split("\0") if name}
    return {os.path.relpath(os.path.join(folder, name), ROOT)
            for folder, folders, names in os.walk(os.path.join(ROOT, PACKAGE))
            if "__pycache__" not in folder for name in names if not name.endswith(".pyc")}


def clean_environment() -> dict:
    """The environment without anything that would point Python back at the checkout."""
    return {name: value for name, value in os.environ.items()
            if name not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
            and not name.startswith("RTM_")}


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel): ``python -m build`` makes the sdist, then the wheel from the sdist."""
    try:
        import build  # noqa: F401  (only to say clearly what is missing)
    except ImportError:
        need(False, "the packaging test needs 'build' (pip install -e '.[test]')")
    outdir = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(outdir), ROOT],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sdist = [name for name in os.listdir(outdir) if name.endswith(".tar.gz")]
    wheel = [name for name in os.listdir(outdir) if name.endswith(".whl")]
    assert len(sdist) == 1 and len(wheel) == 1, os.listdir(outdir)
    return str(outdir / sdist[0]), str(outdir / wheel[0])


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory):
    """A fresh virtual environment in a temporary directory with the wheel and every extra."""
    home = tmp_path_factory.mktemp("venv")
    path = str(home / "env")
    subprocess.run([sys.executable, "-m", "venv", path], check=True, timeout=300)
    python = os.path.join(path, "bin", "python")
    result = subprocess.run([python, "-m", "pip", "install", "-q", dists[1] + "[all]"],
                            cwd=str(home), capture_output=True, text=True, timeout=600,
                            env=clean_environment())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return path


def test_wheel_holds_every_file_of_the_package(dists):
    with zipfile.ZipFile(dists[1]) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.startswith(PACKAGE + "/")}
        metadata = next(wheel.read(name).decode() for name in wheel.namelist()
                        if name.endswith(".dist-info/METADATA"))
    assert in_wheel == checkout_files()
    assert "realtimemagic/pubsub/__init__.py" in in_wheel
    assert "realtimemagic/static/demo.html" in in_wheel
    assert "License: MIT" in metadata or "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
    for field in ("Author: ", "Keywords: ", "Project-URL: Source",
                  "Classifier: Programming Language :: Python :: Implementation :: PyPy",
                  "Provides-Extra: all", "Requires-Python: >=3.9"):
        assert field in metadata, field
    for requirement in ('psycopg2-binary>=2.9; platform_python_implementation == "CPython"',
                        'psycopg2cffi>=2.9; platform_python_implementation == "PyPy"',
                        'orjson>=3.10; platform_python_implementation == "CPython"'):
        assert requirement in metadata.replace(" ; ", "; ").replace("'", '"')


def test_sdist_holds_the_same_files_and_the_license(dists):
    with tarfile.open(dists[0]) as sdist:
        names = [member.name for member in sdist.getmembers() if member.isfile()]
    top = names[0].split("/")[0]
    inside = {name[len(top) + 1:] for name in names if name.startswith(top + "/")}
    assert {name for name in inside if name.startswith(PACKAGE + "/")} == checkout_files()
    assert {"LICENSE", "README.md", "setup.cfg", "pyproject.toml", "docs/pypy.md"} <= inside


WALK = r"""
import importlib, json, pkgutil, sys
import realtimemagic
failed = {}
names = ["realtimemagic"]
for module in pkgutil.walk_packages(realtimemagic.__path__, "realtimemagic.",
                                    onerror=lambda name: failed.setdefault(name, "walk")):
    names.append(module.name)
    try:
        importlib.import_module(module.name)
    except Exception as error:
        failed[module.name] = "%s: %s" % (type(error).__name__, error)
print(json.dumps({"file": realtimemagic.__file__, "modules": names, "failed": failed}))
"""


def test_every_module_imports_from_the_environment(venv, tmp_path):
    result = subprocess.run([os.path.join(venv, "bin", "python"), "-c", WALK], cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=120, env=clean_environment())
    assert result.returncode == 0, result.stderr
    walked = json.loads(result.stdout.strip().splitlines()[-1])
    assert walked["file"].startswith(venv + os.sep), walked["file"]
    assert walked["failed"] == {}
    expected = {name[:-3].replace("/", ".").replace(".__init__", "")
                for name in checkout_files() if name.endswith(".py")}
    assert set(walked["modules"]) == expected


def test_rtm_serve_from_another_directory(venv, tmp_path):
    import websocket
    port, api_port = free_port(), free_port()
    log_path = str(tmp_path / "rtm-serve.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [os.path.join(venv, "bin", "rtm-serve"), "--port", str(port), "--api-port",
             str(api_port)], cwd="/", stdout=log, stderr=subprocess.STDOUT,
            env=clean_environment())
    try:
        try:
            wait_for_port(port, process, timeout=30)
        except RuntimeError as error:
            raise AssertionError("%s\n%s" % (error, open(log_path).read()))
        base = "http://127.0.0.1:%d" % port

        ws = websocket.create_connection("ws://127.0.0.1:%d/pubsub/websocket" % port, timeout=10)
        try:
            ws.send(json.dumps({"action": "subscribe", "payload": {"channel": "packaged"},
                                "id": 1}))
            assert json.loads(ws.recv()) == {"action": "subscribed",
                                             "payload": {"channel": "packaged"}, "id": 1}
            ws.send(json.dumps({"action": "publish",
                                "payload": {"channel": "packaged", "message": {"n": 1}}}))
            assert json.loads(ws.recv()) == {"action": "message", "payload": {
                "channel": "packaged", "message": {"n": 1}}}
            request = urllib.request.Request(
                "http://127.0.0.1:%d/api/publish" % api_port, method="POST",
                data=json.dumps({"channel": "packaged", "message": "from the API"}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            assert json.loads(ws.recv())["payload"]["message"] == "from the API"
        finally:
            ws.close()

        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert response.status == 200
            page = response.read().decode("utf-8")
        # Every script the demo page loads from this server (its client, sockjs-client) is in
        # the package.
        scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page) + re.findall(
            r'data-sockjs-url="([^"]+)"', page)
        local = [src for src in scripts if not re.match(r"[a-z]+:|//", src)]
        assert len(local) >= 2, page[:1000]
        for src in local:
            with urllib.request.urlopen(base + "/" + src.lstrip("/"), timeout=10) as response:
                assert response.status == 200 and response.read(), src
    finally:
        process.terminate()
        process.wait(20)
