# The two commands: `make quickstart` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tetragen-installed
# The CPU build of torch, installed first so that nothing later pulls a CUDA build: by uv (faster than pip) as
# torch==2.13.0+cpu from the wheel folders pip is configured to read (pip's find-links), else by pip, which reads the
# machine's pip configuration, else from PyTorch's CPU index. The rest is installed by uv (from PyPI); by pip where
# uv fails.
TORCH  := torch==2.13.0
LINKS  := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip's notes about index folders that do not exist on this machine are noise
QUIET  := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: quickstart test test-slow bench clean-venv system browser sound music

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv $(QUIET)
	$(VENV)/bin/uv pip install -q --python $(PY) $(addprefix --find-links ,$(LINKS)) \
	    '$(TORCH)+cpu' 2>/dev/null || \
	  $(PY) -m pip install -q $(TORCH) $(QUIET) || \
	  $(PY) -m pip install -q --index-url https://download.pytorch.org/whl/cpu $(TORCH) $(QUIET)
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[test]' || \
	  $(PY) -m pip install -q -e '.[test]' $(QUIET)
	touch $(STAMP)

quickstart: SYSTEM := music
quickstart: $(STAMP) system
	$(VENV)/bin/tetragen data fetch fashion-mnist
	$(VENV)/bin/tetragen data fetch spoken-words
	$(VENV)/bin/tetragen data fetch bach-chorales
	$(VENV)/bin/tetragen quickstart

# Debian packages, checked and where missing installed in one apt step (one `apt-get update`) where this is root with
# apt; elsewhere the tests that need them are skipped or fail, saying how to install them. `make test` asks for all
# three groups, `make quickstart` for music (rendering to WAV). Groups:
#   browser  chromium + chromium-driver: the playground's browser test (tests/test_playground.py), else skipped
#   sound    espeak-ng: the sound tests synthesise words with it
#   music    fluidsynth + fluid-soundfont-gm: music is rendered to WAV with a General MIDI SoundFont
SYSTEM := browser sound music
system:
	@missing=""; recommends=""; \
	if [[ " $(SYSTEM) " == *" browser "* ]] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then \
	  recommends="chromium chromium-driver"; fi; \
	if [[ " $(SYSTEM) " == *" sound "* ]] && ! command -v espeak-ng >/dev/null; then missing="$$missing espeak-ng"; fi; \
	if [[ " $(SYSTEM) " == *" music "* ]] && ! { command -v fluidsynth && test -f /usr/share/sounds/sf2/FluidR3_GM.sf2; } \
	    >/dev/null; then missing="$$missing fluidsynth fluid-soundfont-gm"; fi; \
	want=$$(echo $$missing $$recommends); if [ -z "$$want" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing (apt): $$want"; \
	  { apt-get update -qq \
	    && { [ -z "$$recommends" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$recommends; } \
	    && { [ -z "$$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	         $$missing; }; } >/dev/null || echo "could not install: $$want"; \
	else echo "missing, and not root with apt: $$want (the tests that need them skip or fail saying so)"; \
	fi

browser: SYSTEM := browser
sound: SYSTEM := sound
music: SYSTEM := music
browser sound music: system

# The video and token tests make their clips from Fashion-MNIST: fetched here (Debian's dataset-fashion-mnist where
# this is root with apt, else the product's own fetcher says what it could not do).
# Packages are installed without their bytecode (compiling all of torch's took 25 s); the tests' first imports write
# the few hundred modules they use, even where the environment sets PYTHONDONTWRITEBYTECODE.
test: $(STAMP) system
	$(VENV)/bin/tetragen data fetch fashion-mnist
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest

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
