# kpbench: every target sets up .venv itself (pins in requirements.txt) and reuses it.
# Overridable: CONFIG, DATA, OUT, MODELS (e.g. make run MODELS='pytorch/resnet18 keras/mobilenet').
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/smoke.yaml
SAMPLE ?= data/sample
OUT    ?= runs/smoke
DATA   ?=
MODELS ?=

RUN_FLAGS = --config $(CONFIG) --out $(OUT) $(if $(DATA),--data $(DATA)) $(if $(MODELS),--models $(MODELS))

.PHONY: setup run score test test-slow bench weights sample-data clean clean-venv

# The stamp is newer than the pin file once installed, so a second `make` installs nothing.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

$(SAMPLE)/classes.txt: | $(STAMP)
	$(BIN)/kpbench sample-data $(SAMPLE)

sample-data: $(SAMPLE)/classes.txt

run: $(STAMP) $(SAMPLE)/classes.txt
	$(BIN)/kpbench run $(RUN_FLAGS)

score: $(STAMP)
	$(BIN)/kpbench score $(OUT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

# Speed and memory measurements: each script prints a ratio against a baseline run in the same process.
bench: $(STAMP)
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

weights: $(STAMP)
	$(BIN)/kpbench weights $(if $(MODELS),--models $(MODELS))

clean:
	rm -rf runs $(SAMPLE)

clean-venv:
	rm -rf $(VENV)
