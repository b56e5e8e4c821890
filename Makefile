# earthseg: every target sets up what it needs (virtual environment in .venv, Docker).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= demo-output
DEMO_SCENES ?= 8
DEMO_SIZE ?= 1024
BASE_IMAGE ?= earthseg-base:bookworm

.PHONY: help setup docker test lint format demo bench base-image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(INSTALLED) ## virtual environment in .venv with the pinned package and dev tools

$(INSTALLED): pyproject.toml constraints.txt
	scripts/setup-venv.sh $(PYTHON) $(VENV) 'preprocess,train,tf-cpu,aws,dev'
	touch $@

docker: ## install Debian's docker.io and docker-compose when missing, start dockerd when none answers
	scripts/ensure-docker.sh

test: setup ## run the whole suite, Docker tests included
	scripts/ensure-docker.sh || [ "$$CI" != "true" ]
	$(BIN)/pytest -q

lint: setup ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: setup ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

demo: setup ## sample export -> preprocess, on bundled synthetic data
	rm -rf $(DEMO_DIR)
	$(BIN)/earthseg sample --out $(DEMO_DIR)/export --scenes $(DEMO_SCENES) --size $(DEMO_SIZE) --seed 0
	$(BIN)/earthseg preprocess --images $(DEMO_DIR)/export/images --labels $(DEMO_DIR)/export/labels \
		--out $(DEMO_DIR)/dataset --tile-size 256 --seed 0 --write-tiles
	@echo
	@echo "Demo outputs:"
	@echo "  sample export (scenes + shapefiles): $(DEMO_DIR)/export"
	@echo "  training channels + manifest:        $(DEMO_DIR)/dataset/{train,validation,test}, $(DEMO_DIR)/dataset/manifest.json"
	@echo "  per-tile GeoTIFFs + _bitmap.png:     $(DEMO_DIR)/dataset/tiles"
	@echo "Next in the chain (not built yet): train in the training image, serve, predict, report."

bench: setup ## preprocessing throughput beside the bare rasterio read
	$(BIN)/python bench/preprocess.py

base-image: docker ## Debian bookworm base image from debootstrap + docker import (no Docker Hub)
	scripts/base-image.sh $(BASE_IMAGE)

clean: ## remove the demo output and caches (keeps .venv)
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
