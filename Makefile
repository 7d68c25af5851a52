# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo_out

.PHONY: install demo test test-fast bench-tokenize bench-reason clean

# torch is pinned to the local CPU wheel (an unpinned torch pulls GB of CUDA wheels);
# torch-scatter has no wheel for it and builds from source against that torch.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-build-isolation torch-scatter
	touch $@

install: $(BIN)/.installed

# The main job on the built-in example: tokenize, train a small model, evaluate and predict.
demo: install
	$(BIN)/tofu example $(DEMO)/graphs/example
	$(BIN)/tofu tokenize $(DEMO)/graphs/example --out $(DEMO)/artifacts
	$(BIN)/tofu train $(DEMO)/artifacts/example --out $(DEMO)/checkpoint --max-steps 200 --eval-every 100 \
		--dim 32 --layers 3 --relation-layers 2 --quiet
	$(BIN)/tofu reason --checkpoint $(DEMO)/checkpoint $(DEMO)/artifacts --output $(DEMO)/results --quiet
	printf 'person:000\tcitizen_of\t?\n?\tcity_in\tcountry:japan\n' > $(DEMO)/queries.tsv
	$(BIN)/tofu reason --checkpoint $(DEMO)/checkpoint $(DEMO)/artifacts/example \
		--predict $(DEMO)/queries.tsv --top-k 3 --output $(DEMO)/results --quiet

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench-tokenize: install
	$(BIN)/python benchmarks/tokenize_bench.py

bench-reason: install
	$(BIN)/python benchmarks/reason_bench.py

clean:
	rm -rf $(DEMO) .pytest_cache
