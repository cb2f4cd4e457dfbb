# Two commands do all set-up: `make repro` (pipeline on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PED2 ?= $(abspath ../shared/datasets/ped2)

.PHONY: setup repro test lint bench experiments ped2 clean

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

# The paper's Table V (K) and Table VI (stream ablation) as queued DVC experiments.
experiments: $(STAMP)
	for k in 1 2 5 10 15 20 30 40; do \
	  PATH=$(abspath $(BIN)):$$PATH dvc exp run --queue -n K$$k -S gmfc_vae.K=$$k; done
	PATH=$(abspath $(BIN)):$$PATH dvc exp run --queue -n appearance -S fuse.alpha=1 -S fuse.beta=0
	PATH=$(abspath $(BIN)):$$PATH dvc exp run --queue -n motion -S fuse.alpha=0 -S fuse.beta=1
	PATH=$(abspath $(BIN)):$$PATH dvc exp run --queue -n fused -S fuse.alpha=0.5 -S fuse.beta=0.5
	PATH=$(abspath $(BIN)):$$PATH dvc queue start -j 1
	PATH=$(abspath $(BIN)):$$PATH dvc queue status

clean:
	rm -rf data/interim data/models data/scores data/checkpoints
