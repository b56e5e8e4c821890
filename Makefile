# earthseg: every target sets up what it needs (virtual environment in .venv, Docker).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= demo-output
BASE_IMAGE ?= earthseg-base:bookworm
FLAVOR ?= gpu
MODEL_DIR ?= $(DEMO_DIR)/run/model
PORT ?= 8080
IMAGES_JSON ?= build/images-$(FLAVOR).json

.PHONY: help setup docker test test-quick test-gpu-images gpu-check lint format demo bench base-image build push serve-local clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: $(INSTALLED) ## virtual environment in .venv with the pinned package and dev tools

$(INSTALLED): pyproject.toml constraints.txt
	scripts/setup-venv.sh $(PYTHON) $(VENV) 'imagery,preprocess,detect,train,tf-cpu,serve,ort-cpu,aws,dev'
	touch $@

docker: ## install Debian's docker.io and docker-compose when missing, start dockerd when none answers
	scripts/ensure-docker.sh

test: setup ## run the whole suite, Docker and WMS (MapServer) tests included (not the gpu images': make test-gpu-images)
	scripts/ensure-docker.sh --registry || [ "$$CI" != "true" ]
	scripts/ensure-mapserver.sh || [ "$$CI" != "true" ]
	$(BIN)/pytest -q -m "not gpu_images"

test-quick: setup ## the quick loop: no Docker, no model trained in a subprocess (about two minutes)
	scripts/ensure-mapserver.sh || [ "$$CI" != "true" ]
	$(BIN)/pytest -q -m "not docker and not slow"

test-gpu-images: setup docker ## build the gpu images (3.6 + 6.9 GB) and test their CUDA against SageMaker's host drivers; serve gpu on the CPU
	$(BIN)/pytest -q tests/test_gpu_images_pins.py tests/docker/test_gpu_images.py

gpu-check: setup docker ## with an NVIDIA GPU and Docker's NVIDIA runtime: the gpu images with --gpus all against the CPU (epoch s, tiles/s, scene s), and `doctor`
	BASE_IMAGE=$(BASE_IMAGE) scripts/gpu-check.sh $(GPU_CHECK_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

demo: setup ## labels-only sample export + a local WMS -> earthseg pipeline --local (fetch, preprocess, train, serve, predict in the cpu images) -> report
	scripts/demo.sh $(DEMO_DIR)

bench: setup docker ## each stage's throughput beside the baseline it must beat
	scripts/ensure-mapserver.sh
	$(BIN)/python bench/fetch.py
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/input_pipeline.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/tuning.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/detect.py

base-image: docker ## Debian bookworm base image from debootstrap + docker import (no Docker Hub)
	scripts/base-image.sh $(BASE_IMAGE)

build: docker ## both images, earthseg-{train,serve}:<version>-$(FLAVOR) (FLAVOR=cpu|gpu; gpu is what push sends)
	BASE_IMAGE=$(BASE_IMAGE) scripts/build-image.sh train $(FLAVOR)
	BASE_IMAGE=$(BASE_IMAGE) scripts/build-image.sh serve $(FLAVOR)

push: setup docker ## push what `make build` made (FLAVOR) to ECR or REGISTRY=host[/namespace]; URIs to $(IMAGES_JSON)
	$(BIN)/earthseg push --flavor $(FLAVOR) --json $(IMAGES_JSON)

serve-local: docker ## serve the last trained model (MODEL_DIR, default the demo's) on port $(PORT) in the cpu serve image
	@[ -f $(MODEL_DIR)/earthseg.json ] || { echo "no trained model in $(MODEL_DIR): run 'make demo' first, or pass MODEL_DIR=..."; exit 2; }
	BASE_IMAGE=$(BASE_IMAGE) scripts/build-image.sh serve cpu
	docker run --rm --network host -e SAGEMAKER_BIND_TO_PORT=$(PORT) \
		-v "$$(realpath $(MODEL_DIR)):/opt/ml/model:ro" earthseg-serve:cpu serve

clean: ## remove the demo output and caches (keeps .venv)
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
