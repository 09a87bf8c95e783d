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
PYTEST_ARGS ?=

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tflite-ref]'
	touch $(STAMP)

demo: install
	$(BIN)/accel summary examples/specs/seed_mnist_cnn.yaml
	@echo
	$(BIN)/accel explain examples/specs/seed_mnist_cnn.yaml conv2d_1
	@echo
	$(BIN)/accel explain examples/specs/seed_mnist_cnn.yaml dense

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf build .pytest_cache .hypothesis
