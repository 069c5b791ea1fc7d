#!/usr/bin/env bash
# CI regression gate: run a small fixed real-LIBERO evaluation with rendering off and gate it
# (`vla-bench gate`) against the reference run committed under results/reference/.
#
#   scripts/gate.sh                      evaluate into results/gate-<time>/ and gate; exit 1 on a regression
#   scripts/gate.sh --update-reference   re-create the reference run instead (commit the result)
#
# Settings come from the environment; `make gate` passes its GATE_* variables. Exit status is the
# gate's: 0 pass, 1 significant drop or below the floor, 2 unusable input (e.g. the reference was
# made with other settings: regenerate it with --update-reference).
set -euo pipefail
cd "$(dirname "$0")/.."

VLA_BENCH=${VLA_BENCH:-.venv/bin/vla-bench}
# Defaults mirror the Makefile's; an empty GATE_MAX_STEPS means the protocol's step limits.
GATE_POLICY=${GATE_POLICY:-expert}
GATE_CHECKPOINT=${GATE_CHECKPOINT:-}
GATE_PROTOCOL=${GATE_PROTOCOL:-openvla}
GATE_SUITES=${GATE_SUITES:-libero_object,libero_spatial,libero_goal,libero_10}
GATE_TASKS=${GATE_TASKS:-0-9}
GATE_TRIALS=${GATE_TRIALS:-3}
GATE_MAX_STEPS=${GATE_MAX_STEPS-}
GATE_REFERENCE=${GATE_REFERENCE:-results/reference/gate}
GATE_ARGS=${GATE_ARGS:-}  # extra `vla-bench gate` flags, e.g. "--min-success 0.8 --test boschloo"

evaluate() {  # $1: output run folder (must not exist)
  local args=(eval --policy "$GATE_POLICY" --protocol "$GATE_PROTOCOL" --suite "$GATE_SUITES"
              --tasks "$GATE_TASKS" --trials "$GATE_TRIALS" --render off --no-progress --output "$1")
  [[ -n "$GATE_CHECKPOINT" ]] && args+=(--checkpoint "$GATE_CHECKPOINT")
  [[ -n "$GATE_MAX_STEPS" ]] && args+=(--max-steps "$GATE_MAX_STEPS")
  echo "+ vla-bench ${args[*]}"
  "$VLA_BENCH" "${args[@]}"
}

if [[ "${1:-}" == "--update-reference" ]]; then
  staging="$GATE_REFERENCE.new"
  rm -rf "$staging"
  evaluate "$staging"
  rm -rf "$GATE_REFERENCE"
  mv "$staging" "$GATE_REFERENCE"
  echo "reference run written to $GATE_REFERENCE; commit it"
  exit 0
fi

if [[ ! -f "$GATE_REFERENCE/run.json" ]]; then
  echo "gate: no reference run at $GATE_REFERENCE (create it with: make gate-reference)" >&2
  exit 2
fi
output="results/gate-$(date +%Y%m%d-%H%M%S)"
evaluate "$output"
echo "+ vla-bench gate $output --baseline $GATE_REFERENCE $GATE_ARGS"
# shellcheck disable=SC2086  # GATE_ARGS is a list of flags
exec "$VLA_BENCH" gate "$output" --baseline "$GATE_REFERENCE" $GATE_ARGS
