# Two entry points (see README): `make run` and `make test`. Both set up everything they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
REGISTRY ?= YOUR-REGISTRY
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FINETUNE_STEPS ?= 100

.PHONY: run test test-fast setup system-deps test-system-deps lint image constraints

# Pre-training on the embedded defaults (synthetic data built if absent, local Ray, sqlite MLflow),
# then fine-tuning from it. Then: mlflow ui --backend-store-uri sqlite:///mlflow.db
run: setup
	$(BIN)/python flows/pretrain.py
	$(BIN)/python flows/finetune.py --init-from latest --set train.steps=$(FINETUNE_STEPS)

test: setup test-system-deps
	$(BIN)/python -m pytest -q --durations=15

# The fast tiers (unit, data, model): no Ray cluster, no servers.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not services" tests/unit tests/data tests/model

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

setup: system-deps $(STAMP)

# Debian packages: a CJK font to draw Chinese captions, Java for METEOR, OpenCV's libGL and GLib for OCR.
system-deps:
	@if ! fc-list :lang=zh 2>/dev/null | grep -q . || ! command -v java >/dev/null \
		|| ! ldconfig -p | grep -q libGL.so.1 || ! ldconfig -p | grep -q libglib-2.0.so.0; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			fontconfig fonts-noto-cjk fonts-wqy-microhei default-jre-headless libgl1 libglib2.0-0 >/dev/null; \
	fi

# For the tests only: PostgreSQL under the team's mlflow server, Chromium and its driver for the page.
test-system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v chromium >/dev/null \
		|| ! command -v chromedriver >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			postgresql chromium chromium-driver >/dev/null; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# The project's image (infra/Dockerfile), tagged with pyproject.toml's version, the one version source:
# the manifests' tags are checked against it (tests/unit/test_deployment.py). Needs a Docker daemon.
image:
	docker build -f infra/Dockerfile -t $(REGISTRY)/caponimage:$(VERSION) .

# constraints.txt anew from the environment `make setup` built, after pyproject.toml's dependencies change.
constraints: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --all --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
