# kpbench: every target sets up .venv itself (pins in requirements.txt) and reuses it.
# Overridable: CONFIG, DATA, OUT, MODELS (e.g. make run MODELS='pytorch/resnet18 keras/mobilenet').
# Docker (docs/docker-and-clusters.md): IMAGE (set: `make run` runs in that image instead of
# .venv; `make build`/`build-cpu` tag it, default kpbench:gpu / kpbench:cpu), GPUS (docker --gpus,
# default all, none for an image named *cpu*), TORCH_CACHE and KERAS_CACHE (host weights caches,
# mounted read-only), SHM_SIZE (/dev/shm for Ray's object store), DOCKER (docker or podman),
# BASE_IMAGE (build on it instead of the Dockerfiles' pinned base), BUILD_FLAGS (more build flags).
# Images without a registry, and their tests: docs/images.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/smoke.yaml
SAMPLE ?= data/sample
OUT    ?= runs/smoke
DATA   ?=
MODELS ?=
IMAGE  ?=
DOCKER ?= docker
GPUS   ?= $(if $(findstring cpu,$(IMAGE)),,all)
TORCH_CACHE ?= $(or $(TORCH_HOME),$(HOME)/.cache/torch)
KERAS_CACHE ?= $(or $(KERAS_HOME),$(HOME)/.keras)
SHM_SIZE    ?= 32g
BASE_IMAGE  ?=
BUILD_FLAGS ?=

RUN_FLAGS = --config $(CONFIG) --out $(OUT) $(if $(DATA),--data $(DATA)) $(if $(MODELS),--models $(MODELS))

.PHONY: setup run score test test-slow test-all-models catalog docs bench lint lock build build-cpu base-image \
	test-image test-image-gpu weights sample-data clean clean-venv

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

ifeq ($(IMAGE),)
run: $(STAMP) $(SAMPLE)/classes.txt
	$(BIN)/kpbench run $(RUN_FLAGS)
else
# In the image, as the calling user: the config at /work/run.yaml (paths in it relative to /work),
# ./data and ./configs at /work/data and /work/configs, DATA at /data (read-only), OUT at /out, the
# weights caches read-only at /cache/{torch,keras} (the entrypoint mirrors them writable). As root,
# as the image's own user (uid 1000) instead, to whom ./data and OUT are given.
AS_ROOT := $(filter 0,$(shell id -u))
# podman: docker/containers.conf (runc, fixed ulimits) unless CONTAINERS_CONF is set, as the image
# targets do (docker/image-lib.sh; docs/images.md)
ifneq ($(findstring podman,$(notdir $(DOCKER))),)
export CONTAINERS_CONF ?= $(CURDIR)/docker/containers.conf
endif
DOCKER_RUN = $(DOCKER) run --rm $(if $(AS_ROOT),,--user $$(id -u):$$(id -g)) -e HOME=/tmp --shm-size=$(SHM_SIZE) \
	$(if $(GPUS),--gpus $(GPUS)) \
	-v $(CURDIR)/data:/work/data -v $(CURDIR)/configs:/work/configs:ro \
	-v $(abspath $(CONFIG)):/work/run.yaml:ro -v $(abspath $(OUT)):/out \
	$(if $(DATA),-v $(abspath $(DATA)):/data:ro) \
	$(if $(wildcard $(TORCH_CACHE)),-v $(abspath $(TORCH_CACHE)):/cache/torch:ro) \
	$(if $(wildcard $(KERAS_CACHE)),-v $(abspath $(KERAS_CACHE)):/cache/keras:ro) \
	$(IMAGE)
run:
	mkdir -p data $(OUT)
	$(if $(AS_ROOT),chown "$$($(DOCKER) run --rm --entrypoint id $(IMAGE) -u)" data $(OUT))
	$(if $(DATA),,test -f $(SAMPLE)/classes.txt || $(DOCKER_RUN) sample-data $(SAMPLE))
	$(DOCKER_RUN) run --config /work/run.yaml --out /out $(if $(DATA),--data /data) $(if $(MODELS),--models $(MODELS))
endif

score: $(STAMP)
	$(BIN)/kpbench score $(OUT)

test: lint
	$(BIN)/pytest

# ruff, mypy over runner/ (config in pyproject.toml), and hadolint on the Dockerfiles (no Docker
# engine needed).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/hadolint docker/Dockerfile docker/Dockerfile.cpu

# Regenerate docker/*.lock (hashes, Linux x86_64, the images' Python) from requirements.txt.
lock: $(STAMP)
	$(BIN)/python docker/locks.py lock

# podman needs --format docker, or it ignores SHELL and RUN steps lose `bash -o pipefail`.
DOCKER_BUILD = $(strip $(DOCKER) build $(if $(findstring podman,$(notdir $(DOCKER))),--format docker) \
	$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) $(BUILD_FLAGS))

build:
	$(DOCKER_BUILD) -f docker/Dockerfile -t $(or $(IMAGE),kpbench:gpu) .

build-cpu:
	$(DOCKER_BUILD) -f docker/Dockerfile.cpu -t $(or $(IMAGE),kpbench:cpu) .

# A stand-in for the pinned base, from a Debian mirror (root, debootstrap): the air-gapped route.
base-image:
	DOCKER=$(IMAGE_ENGINE) docker/base-image.sh

# Build the image, run the smoke config in it and in .venv, require identical predictions and the
# lock's package versions (docker/test-image.sh; CI runs test-image, test-image-gpu is slower).
# DOCKER unset: whichever of docker and podman works, podman installed with apt if need be.
IMAGE_ENGINE = $(if $(filter file,$(origin DOCKER)),,$(DOCKER))
TEST_IMAGE = DOCKER=$(IMAGE_ENGINE) IMAGE=$(IMAGE) BASE_IMAGE=$(BASE_IMAGE) BUILD_FLAGS="$(BUILD_FLAGS)" BIN=$(BIN) \
	CONFIG=$(CONFIG) MAKE=$(MAKE) docker/test-image.sh
test-image: $(STAMP) $(SAMPLE)/classes.txt
	$(TEST_IMAGE) cpu

test-image-gpu: $(STAMP) $(SAMPLE)/classes.txt
	$(TEST_IMAGE) gpu

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

# Every catalog entry (188) built with random weights, one prediction each, parameter counts and
# Keras weight file names checked (CONTRIBUTING.md, "Tests": about 20 minutes on 2 cores).
test-all-models: $(STAMP)
	$(BIN)/pytest -m all_models --durations=0 tests/test_zoo.py

# Regenerate runner/catalog/torchvision.yaml and timm.yaml from the installed torchvision and timm
# (after an upgrade); TIMM_RESULTS: timm's results/results-imagenet.csv (docs/models.md).
TIMM_RESULTS ?= ../shared/reference/timm/results-imagenet.csv
catalog: $(STAMP)
	$(BIN)/python -m runner.catalog.generate --write
	$(BIN)/python -m runner.catalog.timm --results $(TIMM_RESULTS) --write
	$(BIN)/python -m runner.catalog.docs

# Regenerate the generated docs: docs/configuration.md from RunConfig in runner/config.py (after
# changing an option), docs/catalog.md from runner/catalog/*.yaml (tests fail while either drifts).
docs: $(STAMP)
	$(BIN)/python -m runner.options
	$(BIN)/python -m runner.catalog.docs

# Speed and memory measurements: each script prints a ratio against a baseline run in the same process.
bench: $(STAMP)
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

weights: $(STAMP)
	$(BIN)/kpbench weights $(if $(MODELS),--models $(MODELS))

clean:
	rm -rf runs $(SAMPLE)

clean-venv:
	rm -rf $(VENV)
