# accel: the two set-up commands are `make demo` and `make test` (each installs what it needs).
PYTHON ?= python3
# Use the active virtual environment if there is one, else .venv in the repository root.
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := $(CURDIR)/.venv
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.accel-installed
# The suite runs on every core, one test file per worker at a time (module fixtures build once).
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tflite-ref,litedram]'
	touch $(STAMP)

# The main job on a built-in example: what the network computes, its integer model, the
# generated accelerator, and a cocotb/Verilator simulation of real digits images checked bit
# for bit against the golden model, with accuracy and cycle figures.
DEMO_DIR ?= build/demo
DIGITS := examples/digits
demo: install
	$(BIN)/accel summary examples/specs/seed_mnist_cnn.yaml
	@echo
	$(BIN)/accel explain examples/specs/seed_mnist_cnn.yaml conv2d_1
	@echo
	$(BIN)/accel summary $(DIGITS)/digits_small.keras
	$(BIN)/accel quantize $(DIGITS)/digits_small.keras --calibration $(DIGITS)/digits_calib_x.npy -o $(DEMO_DIR)/digits_small_q.npz
	$(BIN)/accel predict $(DEMO_DIR)/digits_small_q.npz $(DIGITS)/digits_test_x.npy --labels $(DIGITS)/digits_test_y.npy
	$(BIN)/accel plan $(DEMO_DIR)/digits_small_q.npz --array 2x4
	$(BIN)/accel generate $(DEMO_DIR)/digits_small_q.npz --array 2x4 -o $(DEMO_DIR)/verilog
	$(BIN)/accel sim $(DEMO_DIR)/digits_small_q.npz --array 2x4 --input $(DIGITS)/digits_test_x.npy --images 50 --labels $(DIGITS)/digits_test_y.npy --build-dir $(DEMO_DIR)/sim

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache .hypothesis
