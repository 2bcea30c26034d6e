# PeakClips. `make help` lists the targets. Every target sets up what it needs itself:
# the virtual environment in .venv (refreshed when pyproject.toml changes) and, for tests,
# the Debian packages they use.

PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
CONFIG   ?= pipelines/sample.yaml
MANIFEST ?= manifests/sample.jsonl
OUTPUT   ?= out/$(basename $(notdir $(CONFIG)))
SHARDS   ?=
ifdef RAY_ADDRESS
export RAY_ADDRESS
endif
# The sample run and the tests never reach a model hub (a hub that is unreachable costs a
# minute per load before it fails); real runs may download weights.
OFFLINE  := $(if $(filter pipelines/sample.yaml,$(CONFIG)),HF_HUB_OFFLINE=1)

.PHONY: help peakclips test test-fast bench train-smoke lint clean venv sysdeps

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  variables: CONFIG=$(CONFIG) MANIFEST=$(MANIFEST) OUTPUT=$(OUTPUT) SHARDS=<all> RAY_ADDRESS=<local Ray>"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $@

venv: $(STAMP)  ## create or refresh .venv (quick when nothing changed)

sysdeps:  ## Debian packages the tests use (ffmpeg, chromium); installs only what is missing
	@missing=""; command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	 command -v chromium >/dev/null || missing="$$missing chromium"; \
	 if [ -n "$$missing" ]; then \
	   SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	   echo "installing:$$missing"; \
	   $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	 fi

peakclips: $(STAMP)  ## build a dataset (default: the offline sample into out/sample)
	$(OFFLINE) $(VENV)/bin/peakclips run $(CONFIG) --manifest $(MANIFEST) --output $(OUTPUT) $(if $(SHARDS),--shards $(SHARDS))

test: $(STAMP) sysdeps  ## run all tests, offline (what CI runs)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q < /dev/null

test-fast: $(STAMP) sysdeps  ## the quick tests, offline: no pipeline runs, no models (< 3 min on 2 cores)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not model" < /dev/null

bench: $(STAMP) sysdeps  ## benchmarks (ratios against baselines, side by side); see docs/benchmarks.md
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.run

train-smoke: $(STAMP)  ## sft1 -> sft2 -> rl for a few steps on the sample shards, tiny model, CPU
	HF_HUB_OFFLINE=1 $(PY) -m peakclips.train.smoke

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check peakclips tests benchmarks

clean:  ## remove outputs (keeps .venv)
	rm -rf out runs bench-out
