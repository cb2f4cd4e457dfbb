# Two commands do all set-up: `make repro` (pipeline on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PED2 ?= $(abspath ../shared/datasets/ped2)
# `make benchmark DATA=ped2`: the dataset's root comes from the variable of its name in capitals
DATA ?= ped2
# METHODS=a,b: only these methods (reports/$(DATA)/a+b/), instead of params.yaml's
METHODS ?=
ROOT ?= $($(shell echo $(DATA) | tr a-z A-Z))

.PHONY: setup repro test lint bench benchmark experiments clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# check-params first: a bad value in params.yaml fails in a second, before DVC deletes anything
repro: $(STAMP)
	$(BIN)/python -m vad check-params
	PATH=$(abspath $(BIN)):$$PATH dvc repro
	@cat reports/summary.md

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check vad stages tests

bench: $(STAMP)
	$(BIN)/python -m vad bench motion ped2 $(PED2)

# Every enabled method on a real dataset at its documented CPU budget, through `dvc exp run`;
# writes reports/$(DATA)/ and RESULTS.md's table for it.
benchmark: $(STAMP)
	$(BIN)/python -m vad check-params
	PATH=$(abspath $(BIN)):$$PATH python -m vad benchmark $(DATA) $(ROOT) $(if $(METHODS),--methods $(METHODS))

# The paper's Table V (K) and Table VI (stream ablation) as queued DVC experiments; waits for the
# queue and prints `dvc exp show`. On Ped2 (the table's methods alone at their CPU budget, rows
# into reports/ped2/): make experiments EXP_ARGS="--prefix ped2- --dataset ped2 --root $(PED2)"
# (dissociation's tables: add --table dissociation or --table dissociation_budget)
EXP_ARGS ?=
experiments: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python -m vad experiments $(EXP_ARGS)

clean:
	rm -rf data/settings data/interim data/inputs data/prepared data/models data/scores \
		data/fused data/checkpoints data/timings
