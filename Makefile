# Two entry points on a fresh machine:  `make run` (start the app)  and  `make test` (run the tests).
# `make run` serves serve.py: app.py behind a Host-header check (ui/server.py).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The app listens on loopback only; `make run ADDRESS=0.0.0.0` exposes it to the network (README).
ADDRESS ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test lint slow bench clean-venv

# (Re)create the virtual environment whenever a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/streamlit run serve.py --server.address $(ADDRESS) --server.port $(PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	# Compile every module first: CPython 3.11 can fail a compile() with "AST constructor recursion
	# depth mismatch" when two threads compile at once (a page script in Streamlit's thread, a module
	# first imported by a background job); with bytecode on disk, imports no longer compile.
	$(BIN)/python -m compileall -q embeddings ui pages tests app.py serve.py
	$(BIN)/python -m pytest

slow: $(VENV)/.installed
	$(BIN)/python -m pytest -m slow

clean-venv:
	rm -rf $(VENV)
