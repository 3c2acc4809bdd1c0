# Two commands: `make demo` and `make test` (plus `make lint`, which CI runs first).
# All create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ONNX_STAMP := $(VENV)/.installed-onnx

.PHONY: demo test test-slow test-claims lint clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build: nothing installed later may replace it.
	$(BIN)/python -m pip install --quiet "torch==2.13.*"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,train]"
	@touch $(STAMP)

# the optional [onnx] extra (export and onnxruntime): the tests run its tests; the demo skips it
$(ONNX_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[onnx]"
	@touch $(ONNX_STAMP)

test: $(ONNX_STAMP)
	$(BIN)/python -m pytest -q

# the slow tests (e.g. the learning check), kept out of `make test`; CI runs both
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || test $$? -eq 5  # 5: no slow test collected

# the papers' claims measured on the simulator (long: not part of CI); numbers are printed
test-claims: $(STAMP)
	$(BIN)/python -m pytest -q -s -m claims || test $$? -eq 5  # 5: no claims test collected

demo: $(STAMP)
	$(BIN)/cloudfree --help
	$(BIN)/cloudfree demo --out demo_output

# ruff (style, then formatting) and the layering contracts of pyproject's [tool.importlinter]
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo_output
