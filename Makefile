# Two commands do all set-up: `make repro` (pipeline on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PED2 ?= $(abspath ../shared/datasets/ped2)

.PHONY: setup repro test lint bench experiments clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

repro: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH dvc repro
	PATH=$(abspath $(BIN)):$$PATH dvc metrics show

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check vad stages tests

bench: $(STAMP)
	$(BIN)/python -m vad bench motion ped2 $(PED2)

# The paper's Table V (K) and Table VI (stream ablation) as queued DVC experiments; waits for the
# queue and prints `dvc exp show`. On Ped2: make experiments EXP_ARGS="--prefix ped2- \
#   --set data.name=ped2 --set data.root=$(PED2)"
EXP_ARGS ?=
experiments: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python -m vad experiments $(EXP_ARGS)

clean:
	rm -rf data/interim data/models data/scores data/checkpoints
