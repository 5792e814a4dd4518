# The two commands: `make quickstart` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tetragen-installed
# The CPU build of torch; installed first (by pip, which reads the machine's pip configuration) so that nothing later
# pulls a CUDA build. The rest is installed by uv (from PyPI), faster than pip; by pip where uv fails.
TORCH  := torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about index folders that do not exist on this machine are noise
QUIET  := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: quickstart test test-slow bench clean-venv browser sound music

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH) $(QUIET) || \
	  $(PY) -m pip install -q --index-url https://download.pytorch.org/whl/cpu $(TORCH) $(QUIET)
	$(PY) -m pip install -q uv $(QUIET)
	$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode -e '.[test]' || \
	  $(PY) -m pip install -q -e '.[test]' $(QUIET)
	touch $(STAMP)

quickstart: $(STAMP) music
	$(VENV)/bin/tetragen data fetch fashion-mnist
	$(VENV)/bin/tetragen data fetch spoken-words
	$(VENV)/bin/tetragen data fetch bach-chorales
	$(VENV)/bin/tetragen quickstart

# The playground's browser test drives Debian's chromium through its chromedriver. Where they are missing and this is
# root with apt, they are installed; elsewhere that test is skipped and says why.
browser:
	@if ! { command -v chromium && command -v chromedriver; } >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (apt) for tests/test_playground.py"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	      >/dev/null || echo "could not install them: tests/test_playground.py will be skipped"; \
	  else echo "no chromium + chromedriver, and not root with apt: tests/test_playground.py will be skipped"; fi; \
	fi

# The sound tests synthesise words with Debian's espeak-ng: installed here where this is root with apt (the tests
# install it the same way, and fail saying how where they cannot).
sound:
	@if ! command -v espeak-ng >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing espeak-ng (apt) for the sound tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng; } \
	    >/dev/null || echo "could not install espeak-ng"; \
	fi

# Music is rendered to WAV by Debian's fluidsynth with a General MIDI SoundFont: installed here where this is root with
# apt (elsewhere a .wav output says in one line how to install them, and the tests that render fail saying so).
music:
	@if ! { command -v fluidsynth && test -f /usr/share/sounds/sf2/FluidR3_GM.sf2; } >/dev/null \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing fluidsynth and fluid-soundfont-gm (apt) for the music tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      fluidsynth fluid-soundfont-gm; } >/dev/null || echo "could not install fluidsynth and fluid-soundfont-gm"; \
	fi

# The video and token tests make their clips from Fashion-MNIST: fetched here (Debian's dataset-fashion-mnist where
# this is root with apt, else the product's own fetcher says what it could not do).
test: $(STAMP) browser sound music
	$(VENV)/bin/tetragen data fetch fashion-mnist
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
	$(PY) bench/decode_threads.py
	$(PY) bench/serve_load.py
	$(PY) bench/bench_noise.py

clean-venv:
	rm -rf $(VENV)
