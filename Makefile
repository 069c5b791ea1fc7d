# vla_bench: every target does its own set-up (the install step is skipped when up to date).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# eval-libero selection: a real LIBERO evaluation that finishes in a few minutes on a 2-core CPU
# (the scripted expert needs no rendering).
SUITES ?= libero_spatial,libero_object,libero_goal,libero_10
POLICY ?= expert
CHECKPOINT ?=
PROTOCOL ?= openvla
TASKS ?= 0-4
TRIALS ?= 2
MAX_STEPS ?=
OUTPUT ?=
EVAL_ARGS ?=

.PHONY: install test test-fast test-sim eval-libero lock clean expert-reference bench

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

# CI regression gate: a small fixed real-LIBERO evaluation (rendering off) gated against the reference
# run committed at GATE_REFERENCE (see scripts/gate.sh). `make gate-reference` re-creates the reference
# after the selection below changes; commit it.
# The scripted expert (deterministic, no rendering) on init states 0-2 of every task of the four suites.
GATE_POLICY ?= expert
GATE_CHECKPOINT ?=
GATE_PROTOCOL ?= openvla
GATE_SUITES ?= libero_object,libero_spatial,libero_goal,libero_10
GATE_TASKS ?= 0-9
GATE_TRIALS ?= 3
GATE_MAX_STEPS ?=
GATE_REFERENCE ?= results/reference/gate
GATE_ARGS ?=
GATE_ENV = VLA_BENCH=$(VENV)/bin/vla-bench GATE_POLICY=$(GATE_POLICY) GATE_CHECKPOINT=$(GATE_CHECKPOINT) \
	GATE_PROTOCOL=$(GATE_PROTOCOL) GATE_SUITES=$(GATE_SUITES) GATE_TASKS=$(GATE_TASKS) GATE_TRIALS=$(GATE_TRIALS) \
	GATE_MAX_STEPS=$(GATE_MAX_STEPS) GATE_REFERENCE=$(GATE_REFERENCE) GATE_ARGS="$(GATE_ARGS)"

.PHONY: gate gate-reference

gate: $(STAMP)
	$(GATE_ENV) bash scripts/gate.sh

gate-reference: $(STAMP)
	$(GATE_ENV) bash scripts/gate.sh --update-reference

# Engine throughput on real LIBERO (about 20 minutes on 2 idle cores; run it on an otherwise idle machine):
# writes bench/results/<date>-<host>.json and .md (serial loop, 1/2/4 workers, 50 ms policy, lazy rendering,
# and the slow-policy sweep over 2, 4 and 6 envs with the envs each row needs for <= 1.15x its ideal), then the
# ray executor against the pool on a local 2-node loopback Ray cluster, with envs per GB (<date>-<host>-ray.*).
# `make bench QUICK=1`: every step with tiny settings into temporary folders (checks it runs; no numbers).
BENCH_ARGS ?= --slow-workers 2,4,6
RAY_BENCH_ARGS ?=
QUICK ?=
bench: $(STAMP)
	$(PY) bench/engine_bench.py $(BENCH_ARGS) $(if $(QUICK),--quick)
	$(PY) bench/ray_bench.py $(RAY_BENCH_ARGS) $(if $(QUICK),--quick)

# Remote (openpi websocket protocol) vs in-process policy throughput and loopback request overhead
# (about a minute): writes bench/results/remote.json and .md.
.PHONY: bench-remote
bench-remote: $(STAMP)
	$(PY) bench/remote_bench.py

# Re-pin constraints.txt from a fresh resolve (run after changing dependencies in setup.cfg), and
# copy its simulator pins into the package data `vla-bench doctor` checks (vla_bench/data/simulator_pins.txt).
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q torch==2.13.0
	.venv-lock/bin/pip install -q -e ".[libero,robust,dev]"
	{ echo "# Exact versions of everything installed (torch's CPU build is installed first by scripts/install.sh)."; \
	  echo "# Regenerate with: make lock  (after changing setup.cfg)"; \
	  .venv-lock/bin/pip freeze --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > constraints.txt
	.venv-lock/bin/python -c "from pathlib import Path; from vla_bench.doctor import write_pins; write_pins(Path('constraints.txt'))"
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

# Model adapters: random-weight tiny checkpoints from checkpoints/configs/*.json (committed; the
# recipe is seeded, so a rebuild gives the same weights), and inference benchmarks.
.PHONY: tiny-checkpoints bench-models bench-models-gpu
tiny-checkpoints: $(STAMP)
	$(PY) -m vla_bench.models.tiny --out checkpoints

bench-models: $(STAMP)
	$(PY) bench/models_cpu.py

bench-models-gpu: $(STAMP)
	$(PY) bench/models_gpu.py

# The scripted expert's reference runs (docs/expert.md): EXPERT_TRIALS init states per task, no rendering.
EXPERT_SUITES ?= libero_object libero_spatial libero_goal libero_10
EXPERT_TRIALS ?= 10
# The expert on a small seeded sample of each robustness category whose files are installed (README,
# robustness suites): about 10 min on 2 workers of a 2-core machine.
.PHONY: robust-expert
robust-expert: $(STAMP)
	rm -rf results/reference/robust-expert-libero_plus results/reference/robust-expert-libero_pro
	$(VENV)/bin/vla-bench eval --suite libero_plus --variants installed --limit 18 --policy expert --workers 2 \
		--no-progress --output results/reference/robust-expert-libero_plus
	$(VENV)/bin/vla-bench eval --suite libero_pro_goal,libero_pro_object --variants installed --limit 8 --trials 1 \
		--policy expert --workers 2 --no-progress --output results/reference/robust-expert-libero_pro

.PHONY: expert-reference
expert-reference: $(STAMP)
	for suite in $(EXPERT_SUITES); do \
		rm -rf results/reference/expert-$$suite; \
		$(VENV)/bin/vla-bench eval --suite $$suite --policy expert --trials $(EXPERT_TRIALS) \
			--output results/reference/expert-$$suite --no-progress || exit 1; \
	done
	$(PY) -c "from pathlib import Path; from vla_bench.doctor import copy_expert_reference; print(copy_expert_reference(Path('results/reference')))"

# Seer parity: fixtures made by upstream code (SEER = checkout of OpenRobotLab/Seer at ee228e1, DEPS = its
# pinned dependencies installed with pip --target; see scripts/parity/seer_fixtures.py), and the measured
# difference from upstream written to tests/fixtures/upstream/seer/difference.json.
.PHONY: seer-fixtures seer-parity-measure
seer-fixtures: $(STAMP)
	$(PY) scripts/parity/seer_fixtures.py --seer $(SEER) --deps $(DEPS)

seer-parity-measure: $(STAMP)
	$(PY) scripts/parity/seer_measure.py

# Training (docs/training.md). distill-small: the small-scale VITA-VLA recipe on a CPU machine
# (collect expert demos, train the teacher, distil the student in two stages and by stage 2 alone,
# evaluate the three on held-out init states, report into DS_OUT). The DS_* settings and their defaults
# live in scripts/distill_small.sh; set any on the command line (make exports it), e.g. a toy dry run:
# make distill-small DS_OUT=/tmp/ds DS_COLLECT_TRIALS=2 DS_TRAIN_INITS=1 DS_EVAL_TRIALS=1 ...
.PHONY: distill-small bench-train-gpu
distill-small: $(STAMP)
	VLA_BENCH=$(VENV)/bin/vla-bench bash scripts/distill_small.sh

# Step time of the paper-scale student (VITA-1.5 7B shape) on a GPU; exits 2 without one.
bench-train-gpu: $(STAMP)
	$(PY) bench/train_gpu.py
