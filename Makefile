# inferwatch: the two promises of the README.
#   make demo   set up and run the whole loop locally (no servers)
#   make test   set up and run ruff, mypy and pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := $(wildcard agent analytics kibana tests bench)
DISTS := agent analytics kibana

.PHONY: demo test unit lint typecheck imports pytest bench clean venv browser

# The three distributions (agent/, analytics/, kibana/, one `inferwatch` namespace) are installed
# editable beside the top-level `inferwatch` distribution, which depends on all of them.
$(STAMP): pyproject.toml agent/pyproject.toml analytics/pyproject.toml kibana/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(foreach d,$(DISTS),-e ./$(d)) -e '.[test,demo]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/inferwatch demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: $(STAMP)
	$(BIN)/mypy

# Which package may import which (agent never imports analytics or kibana; detectors do no I/O):
# the contracts are in .importlinter.
imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) browser
	$(BIN)/pytest $(PYTEST_ARGS)

# The report's test opens `inferwatch report`'s page in headless Chromium (Debian's package; CI
# runs as root on Debian). Without it that one test is skipped, and says so.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium not installed: tests/unit/analytics/test_report.py's browser tests will be skipped"

test: lint typecheck imports pytest

# The fast loop while editing: unit tests only, no subprocess scenarios or slow statistics.
unit: $(STAMP)
	$(BIN)/pytest tests/unit -m 'not slow' -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/agent_throughput.py
	$(BIN)/python bench/vs_rsyslog.py --profile
	$(BIN)/python bench/analytics_scaling.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
