# Set-up and the two jobs of the README: `make demo` (a real swap on bundled public-domain photos) and
# `make test`. Both create .venv on first use; torch is pinned to the CPU wheel 2.13.0.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install chromium

$(BIN)/swapface: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/swapface

demo: install
	$(BIN)/swapface demo --output demo-output

# The HTML-report test renders the report in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

lint: install
	$(BIN)/ruff check swapface tests bench

test: install chromium lint
	$(BIN)/python -m pytest -q
