PYTHON ?= python3
PORT ?= 9000

.PHONY: install serve test test-python test-js docs bench bench-short bench-profile clean

install:
	$(PYTHON) -m pip install -q -e '.[test]'
	cd tests/js && npm ci --no-audit --no-fund --silent

serve:
	$(PYTHON) -m realtimemagic.cli --port $(PORT)

test: test-python test-js

test-python:
	$(PYTHON) -m pytest -q -p no:cacheprovider

test-js:
	node --test client/test/*.test.js client/test/*.test.mjs

bench:
	$(PYTHON) bench/run.py

bench-short:
	$(PYTHON) bench/run.py --short

bench-profile:
	$(PYTHON) bench/run.py --profile

clean:
	rm -rf build dist *.egg-info .pytest_cache

docs:
	$(PYTHON) -m realtimemagic.config > docs/settings.md
