# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo_out

.PHONY: install demo test test-fast bench-tokenize clean

# torch is pinned to the local CPU wheel (an unpinned torch pulls GB of CUDA wheels);
# torch-scatter has no wheel for it and builds from source against that torch.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-build-isolation torch-scatter
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/tofu example $(DEMO)/graphs/example
	$(BIN)/tofu tokenize $(DEMO)/graphs/example --out $(DEMO)/artifacts

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench-tokenize: install
	$(BIN)/python benchmarks/tokenize_bench.py

clean:
	rm -rf $(DEMO) .pytest_cache
