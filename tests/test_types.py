"""mypy over realtimemagic/, with the configuration in mypy.ini: zero errors, in CI too."""
import importlib.util
import os
import platform
import subprocess
import sys

import pytest

from conftest import ROOT, need


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_package():
    if platform.python_implementation() != "CPython":
        pytest.skip("the types are checked once, by the CPython job")
    need(importlib.util.find_spec("mypy") is not None, "mypy is not installed (pip install mypy)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "mypy.ini"),
         "--cache-dir", os.path.join(ROOT, ".mypy_cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
