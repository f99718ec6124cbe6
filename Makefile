# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint venv clean

$(BIN)/groklab: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev,hf,tl,ray,tb,wandb,llm,serve,tutorial]"  # hf, tl: the export tests load our models for real; ray: the sweep backend test; tb, wandb: the trackers' tests read the mirrors back; llm, serve: llm-eval is tested against a real local server; tutorial: the notebooks run in tests/test_tutorials.py
	touch $(BIN)/groklab

venv: $(BIN)/groklab

demo: venv
	$(BIN)/groklab demo

lint: venv
	$(BIN)/ruff check groklab tests benchmarks

test: venv lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
