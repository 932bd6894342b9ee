# Set-up and entry points. Everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, so the project's `torch>=2.2` is already satisfied and no CUDA build is pulled.
# Elsewhere, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/default.toml

.PHONY: setup main test lint bench clean serve-only-check edge-check

$(BIN)/medseq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

setup: $(BIN)/medseq

main: setup  ## train the default model on set A, evaluate on set B, print the metrics table
	$(BIN)/medseq train $(CONFIG)

test: setup  ## the whole test suite, including the real-data integration tests
	bash scripts/install_chromium.sh  # Debian's chromium, for the report's screenshot test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src  # [tool.mypy] in pyproject.toml
	$(BIN)/python -m pytest -q --doctest-modules src/medseq  # the docstring examples
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile --durations=15  # the default run, one worker per core
	$(BIN)/python -m pytest -q -m slow -n 2 --dist loadfile --durations=15  # end-to-end runs of minutes each
	$(MAKE) serve-only-check  # a fresh venv with torch and medseq[serve] only
	$(MAKE) edge-check  # a fresh venv with medseq[edge] only: no torch, no web stack

# The `serve` extra alone (no scikit-learn, scipy, wfdb) in a fresh venv: serve, ONNX export and
# ONNX predict of a small bundle trained here (1 epoch, 300 stays).
SERVE_ONLY_DIR ?= runs/serve-only
serve-only-check: setup
	$(BIN)/medseq train configs/gru.toml --no-test --set train.epochs=1 --set data.max_subjects=300 \
		--set data.cv_folds=0 -o $(SERVE_ONLY_DIR)
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" bash scripts/check_serve_only.sh \
		$(SERVE_ONLY_DIR)/bundle $${MEDSEQ_DATA:-../shared/data}/physionet2012/set-b.tar.gz

# The `edge` extra alone (numpy, scipy, onnxruntime; no torch) in a fresh venv: `medseq monitor`
# replays MIT-BIH record 200 with the ONNX export of a beat bundle trained here (1 epoch, 1 seed).
EDGE_DIR ?= runs/edge-check
edge-check: setup
	$(BIN)/medseq train configs/mitbih-beats.toml --set train.epochs=1 --set seeds=[0] \
		-o $(EDGE_DIR)
	$(BIN)/medseq export $(EDGE_DIR)/bundle --format onnx
	PYTHON=$(PYTHON) bash scripts/check_edge.sh $(EDGE_DIR)/bundle \
		$${MEDSEQ_DATA:-../shared/data}/mitdb_full/200

# PEERS=1 first installs Keras/TensorFlow CPU and PyPOTS into benchmarks/.peer-venvs/ (never
# into $(VENV)); without them the training comparison runs medseq alone. Results: benchmarks/results/
bench: setup
	$(BIN)/python benchmarks/bench_read_physionet2012.py --tensors
	@if [ "$(PEERS)" = "1" ]; then bash benchmarks/peers/setup.sh; fi
	$(BIN)/python benchmarks/bench_training.py --rounds 3
	$(BIN)/python benchmarks/bench_physical_limit.py
	$(BIN)/python benchmarks/target_feasibility.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_scaling.py --steps 5 --repeats 3

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
