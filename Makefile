# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Set-up is idempotent: the venv is rebuilt only when pyproject.toml changes (stamp keyed on its hash).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
STAMP := $(VENV)/.installed-$(HASH)

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps 'mediapipe>=1.2.2,<1.3'
	@# The browser tests drive Debian's chromium (Playwright never downloads one); CI runs as root.
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@# The store tests start a throwaway server from Debian's postgresql (its binaries are not on PATH).
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: setup
	$(BIN)/fixlens demo

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out .pytest_cache
