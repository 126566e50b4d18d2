# Two entry points (see README): `make run` and `make test`. Both set up everything they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FINETUNE_STEPS ?= 100

.PHONY: run test test-fast setup system-deps test-system-deps lint

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

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@
