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
	$(BIN)/pip install --quiet -e ".[dev]"
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

bench: install  ## the import benchmark against sqlite3's .import (writes BENCHMARKS.md)
	$(BIN)/python bench/import_vs_sqlite.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
