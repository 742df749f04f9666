# inferwatch: the two promises of the README.
#   make demo   set up and run the whole loop locally (no servers)
#   make test   set up and run ruff, mypy and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := $(wildcard agent analytics kibana tests bench)
DISTS := agent analytics kibana

.PHONY: demo test unit lint typecheck imports pytest bench clean venv sysdeps

# The three distributions (agent/, analytics/, kibana/, one `inferwatch` namespace) are installed
# editable beside the top-level `inferwatch` distribution, which depends on all of them.
$(STAMP): pyproject.toml agent/pyproject.toml analytics/pyproject.toml kibana/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(foreach d,$(DISTS),-e ./$(d)) -e '.[test,demo]'
	touch $(STAMP)

# The agent's native normalizer (agent/native, Rust): optional for a user, built here whenever
# cargo is on the PATH, required in CI. Without it the agent normalizes in Python, ~2.5x slower.
NATIVE := $(VENV)/.native
$(NATIVE): $(STAMP) agent/native/Cargo.toml agent/native/Cargo.lock agent/native/pyproject.toml $(wildcard agent/native/src/*.rs)
	@if command -v cargo >/dev/null 2>&1; then \
		echo "building the native normalizer (agent/native)"; \
		$(BIN)/python -m pip install --quiet ./agent/native && touch $(NATIVE); \
	elif [ "$$CI" = true ]; then \
		echo "cargo not found: CI builds and tests the native normalizer (agent/native); install Rust"; exit 1; \
	else \
		echo "cargo not found: the agent will normalize in Python (see README, 'The native normalizer')"; \
	fi

venv: $(STAMP) $(NATIVE)

demo: $(STAMP) $(NATIVE)
	$(BIN)/inferwatch demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: $(STAMP) $(NATIVE)
	$(BIN)/mypy

# Which package may import which (agent never imports analytics or kibana; detectors do no I/O):
# the contracts are in .importlinter.
imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) $(NATIVE) sysdeps
	$(BIN)/pytest $(PYTEST_ARGS)

# Real peers some tests use, from Debian's packages: headless Chromium opens `inferwatch report`'s
# page, the real logrotate rotates the agent's files (copytruncate, compress). CI runs as root on
# Debian and installs what is missing; elsewhere install them yourself (the tests say what is absent).
SYSDEPS := chromium:chromium logrotate:logrotate
sysdeps:
	@missing="$(foreach d,$(SYSDEPS),$$(command -v $(firstword $(subst :, ,$(d))) >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin command -v $(firstword $(subst :, ,$(d))) >/dev/null 2>&1 || echo $(lastword $(subst :, ,$(d)))))"; \
	missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $$missing (Debian packages the tests use)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "not installed: $$missing (apt-get install $$missing); the tests that need them will say so"; fi; \
	fi

test: lint typecheck imports pytest

# The fast loop while editing: unit tests only, no subprocess scenarios or slow statistics.
unit: $(STAMP) $(NATIVE)
	$(BIN)/pytest tests/unit -m 'not slow' -q $(PYTEST_ARGS)

bench: $(STAMP) $(NATIVE)
	$(BIN)/python bench/agent_throughput.py
	$(BIN)/python bench/vs_rsyslog.py --profile
	$(BIN)/python bench/analytics_scaling.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache agent/native/target
