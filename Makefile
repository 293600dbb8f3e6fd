# The two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/intake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/intake

demo: install
	$(BIN)/intake --config config/intake.toml demo

test: install
	$(BIN)/ruff check intake tests bench
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check intake tests bench

clean:
	rm -rf $(VENV) data .pytest_cache
