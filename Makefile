# One Makefile for the README, CI and everyday work.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench clean

$(BIN)/collect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,bench]"  # bench: the tests run bench/ too
	@touch $@

install: $(BIN)/collect

run: install  ## install and start the service on the embedded SQLite default (data in ./data)
	$(BIN)/collect serve --host $(HOST) --port $(PORT)

test: install  ## install and run the whole test suite
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install  ## every benchmark in bench/, in order, at full size (rewrites BENCHMARKS.md)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
