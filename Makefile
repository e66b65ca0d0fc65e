# The project's own virtual environments live in the checkout: .venv (CPython) and .venv-pypy
# (PyPy); .ci/setup makes them, and everything else the tests need, when missing.
PYTHON ?= .venv/bin/python
PYPY_PYTHON ?= .venv-pypy/bin/python
PORT ?= 9000

# On PyPy: the SockJS conformance tests, the pub/sub protocol, the seed's examples (the slow one
# included), the PostgreSQL and Redis brokers and monitors, the PostgreSQL driver (docs/pypy.md).
PYPY_TESTS = tests/test_sockjs_protocol.py tests/test_sockjs_protocol_polling.py \
	tests/test_sockjs_protocol_streaming.py tests/test_sockjs_protocol_websocket.py \
	tests/test_pubsub_protocol.py tests/test_examples.py tests/test_brokers.py \
	tests/test_monitors_psql.py tests/test_monitors_redis.py tests/test_pgdriver.py

.PHONY: venv setup install serve test test-python test-fast test-js test-pypy docs bench \
	bench-short bench-profile clean

# What `make serve` needs: .venv with the package.
venv:
	.ci/setup serve

# What the tests need (and more: .ci/setup).
setup:
	.ci/setup

install: setup

serve: venv
	$(PYTHON) -m realtimemagic.cli --port $(PORT)

test: setup
	$(MAKE) test-python test-js test-pypy

test-python:
	$(PYTHON) -m pytest -q -p no:cacheprovider

# The pure and in-process levels, in under a minute: everything not marked slow.
test-fast: setup
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow"

test-js:
	node --test client/test/*.test.js client/test/*.test.mjs

test-pypy:
	@if [ -x $(PYPY_PYTHON) ]; then \
		echo "$(PYPY_PYTHON) -m pytest $(PYPY_TESTS)"; \
		$(PYPY_PYTHON) -m pytest -q -p no:cacheprovider $(PYPY_TESTS); \
	elif [ "$$CI" = true ]; then \
		echo "test-pypy: CI=true and no $(PYPY_PYTHON) (.ci/setup makes it as root)" >&2; \
		exit 1; \
	else \
		echo "test-pypy: skipped, no $(PYPY_PYTHON) (run .ci/setup as root, see docs/pypy.md)"; \
	fi

bench: venv
	$(PYTHON) bench/run.py

bench-short: venv
	$(PYTHON) bench/run.py --short

bench-profile: venv
	$(PYTHON) bench/run.py --profile

clean:
	rm -rf build dist *.egg-info .pytest_cache

docs: venv
	$(PYTHON) -m realtimemagic.config > docs/settings.md
