# vla_bench: every target does its own set-up (the install step is skipped when up to date).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# eval-libero selection: a real LIBERO evaluation that finishes in a few minutes on a 2-core CPU.
SUITES ?= libero_spatial,libero_object,libero_goal,libero_10
POLICY ?= zero
CHECKPOINT ?=
PROTOCOL ?= openvla
TASKS ?= 0
TRIALS ?= 2
MAX_STEPS ?=
OUTPUT ?=
EVAL_ARGS ?=

.PHONY: install test test-fast test-sim eval-libero lock clean bench

install: $(STAMP)

$(STAMP): setup.cfg constraints.txt scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not sim"

test-sim: $(STAMP)
	$(PY) -m pytest -q -m sim

eval-libero: $(STAMP)
	$(VENV)/bin/vla-bench eval --suite $(SUITES) --policy $(POLICY) --protocol $(PROTOCOL) \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(if $(TASKS),--tasks $(TASKS)) \
		$(if $(TRIALS),--trials $(TRIALS)) $(if $(MAX_STEPS),--max-steps $(MAX_STEPS)) \
		$(if $(OUTPUT),--output $(OUTPUT)) $(EVAL_ARGS)

# Engine throughput on real LIBERO (a few minutes): writes bench/results/<date>-<host>.json and .md.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) bench/engine_bench.py $(BENCH_ARGS)

# Re-pin constraints.txt from a fresh resolve (run after changing dependencies in setup.cfg).
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q torch==2.13.0
	.venv-lock/bin/pip install -q -e ".[libero,dev]"
	{ echo "# Exact versions of everything installed besides torch (pinned in scripts/install.sh)."; \
	  echo "# Regenerate with: make lock  (after changing setup.cfg)"; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
