# The two commands: `make quickstart` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tetragen-installed
# The CPU build of torch; installed first so that nothing later pulls a CUDA build.
TORCH  := torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about index folders that do not exist on this machine are noise
QUIET  := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: quickstart test test-slow bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH) $(QUIET) || \
	  $(PY) -m pip install -q --index-url https://download.pytorch.org/whl/cpu $(TORCH) $(QUIET)
	$(PY) -m pip install -q -e '.[test]' $(QUIET)
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/tetragen quickstart

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) bench/lm_speed.py
	$(PY) bench/generate_speed.py
	$(PY) bench/data_scale.py
	$(PY) bench/image_gan.py
	$(PY) bench/image_vae.py
	$(PY) bench/image_hybrid.py
	$(PY) bench/pretrain_finetune.py

clean-venv:
	rm -rf $(VENV)
