# Two commands on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo_out

.PHONY: install demo pretrain test test-fast bench-tokenize bench-reason bench-zero-shot clean

# torch is pinned to the local CPU wheel (an unpinned torch pulls GB of CUDA wheels);
# torch-scatter has no wheel for it and builds from source against that torch.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-build-isolation torch-scatter
	touch $@

install: $(BIN)/.installed

# The main job on the built-in example graph (texts and images): tokenize it with the shipped
# codebooks, reason zero-shot with the shipped model (metrics table + a PNG of MRR per relation),
# and predict a few answers in entity names.
demo: install
	$(BIN)/tofu example $(DEMO)/graphs/example
	$(BIN)/tofu tokenize $(DEMO)/graphs/example --out $(DEMO)/artifacts --quiet
	$(BIN)/tofu reason $(DEMO)/artifacts --output $(DEMO)/results --plot $(DEMO)/results/mrr_per_relation.png --quiet
	printf 'person:000\tcitizen_of\t?\n?\tcity_in\tcountry:japan\n' > $(DEMO)/queries.tsv
	$(BIN)/tofu reason $(DEMO)/artifacts/example --predict $(DEMO)/queries.tsv --top-k 3 \
		--output $(DEMO)/results --quiet

# Rebuild the shipped model from the recipe (reads $(TOFU_DATA) or ../shared/data; <= 90 min on 2 CPUs).
pretrain: install
	$(BIN)/tofu pretrain recipes/pretrain.toml --work runs/pretrain --ship

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench-tokenize: install
	$(BIN)/python benchmarks/tokenize_bench.py

bench-reason: install
	$(BIN)/python benchmarks/reason_bench.py

bench-zero-shot: install
	$(BIN)/python benchmarks/zero_shot_bench.py --ablation

clean:
	rm -rf $(DEMO) .pytest_cache
