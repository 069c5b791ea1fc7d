#!/usr/bin/env bash
# The small-scale VITA-VLA recipe on a CPU machine (`make distill-small`; docs/training.md):
#   1. collect expert demonstrations (real LIBERO) for DS_TASKS of DS_SUITE, init states 0..DS_COLLECT_TRIALS-1
#   2. train the small Seer teacher on the demos of init states DS_TRAIN_INITS
#   3. stage 1 (align) + stage 2 (finetune) of the small VITA-VLA student; and a stage-2-only student
#   4. evaluate the three on init states 0..DS_EVAL_TRIALS-1 (no training demo started there) under the
#      protocol the checkpoints declare, and `vla-bench report` them into DS_OUT
# Settings come from the environment (the Makefile passes its DS_* variables). Every step skips what
# is already complete, and an interrupted training step continues with --resume.
set -euo pipefail
cd "$(dirname "$0")/.."

VLA_BENCH=${VLA_BENCH:-.venv/bin/vla-bench}
DS_OUT=${DS_OUT:-results/reference/distill-small}
DS_SUITE=${DS_SUITE:-libero_object}
DS_TASKS=${DS_TASKS:-0-2}
DS_COLLECT_TRIALS=${DS_COLLECT_TRIALS:-30}
DS_TRAIN_INITS=${DS_TRAIN_INITS:-10-29}
DS_EVAL_TRIALS=${DS_EVAL_TRIALS:-10}
DS_WORKERS=${DS_WORKERS:-2}
DS_TEACHER_STEPS=${DS_TEACHER_STEPS:-3000}
DS_ALIGN_STEPS=${DS_ALIGN_STEPS:-600}
DS_FINETUNE_STEPS=${DS_FINETUNE_STEPS:-1500}
DS_BATCH=${DS_BATCH:-8}
DS_SAVE_EVERY=${DS_SAVE_EVERY:-200}
DS_EVAL_MAX_STEPS=${DS_EVAL_MAX_STEPS:-}   # empty: the protocol's step limit
DS_TRAIN_ARGS=${DS_TRAIN_ARGS:-}           # extra flags for every train/distill step, e.g. --no-progress
DS_EVAL_ARGS=${DS_EVAL_ARGS:-}

WORK=$DS_OUT/work            # demonstrations and training state (not committed)
DATA=$WORK/demos.hdf5
mkdir -p "$WORK"
run() { echo "+ vla-bench $*"; "$VLA_BENCH" "$@"; }

# 1. demonstrations (a file is written only when collection finishes: a killed collection restarts)
if [[ ! -f "$DATA" ]]; then
  rm -rf "$WORK/collect.hdf5" "$WORK/collect-run"
  # images stored as rendered (128 px): training resizes them exactly as evaluation does for each model
  run collect --suite "$DS_SUITE" --tasks "$DS_TASKS" --trials "$DS_COLLECT_TRIALS" --protocol vita-vla \
      --workers "$DS_WORKERS" --output "$WORK/collect.hdf5"
  mv "$WORK/collect.hdf5" "$DATA"
fi

train_step() {  # $1: run folder; the rest: the command and its flags
  local dir=$1; shift
  if [[ -f "$dir/checkpoint/training.json" ]]; then  # written when the step finished
    echo "= $dir done"; return
  fi
  local resume=()
  [[ -f "$dir/state/latest" ]] && resume=(--resume)
  run "$@" --output "$dir" --data "$DATA" --init-states "$DS_TRAIN_INITS" --batch-size "$DS_BATCH" \
      --save-every "$DS_SAVE_EVERY" ${resume[@]+"${resume[@]}"} $DS_TRAIN_ARGS
}

# 2-3. teacher, student (align then finetune), stage-2-only student
train_step "$WORK/teacher" train --steps "$DS_TEACHER_STEPS"
TEACHER=$WORK/teacher/checkpoint
train_step "$WORK/student-align" distill --stage align --teacher "$TEACHER" --steps "$DS_ALIGN_STEPS"
train_step "$WORK/student" distill --stage finetune --init "$WORK/student-align/checkpoint" --steps "$DS_FINETUNE_STEPS"
train_step "$WORK/student-stage2-only" distill --stage finetune --teacher "$TEACHER" --steps "$DS_FINETUNE_STEPS"

# 4. evaluation on held-out init states, then the comparison
mkdir -p "$DS_OUT/checkpoints" "$DS_OUT/curves"
names=()
runs=()
for pair in "teacher:seer:$WORK/teacher" "student:vita-vla:$WORK/student" "student-stage2-only:vita-vla:$WORK/student-stage2-only"; do
  IFS=: read -r name policy dir <<<"$pair"
  rm -rf "$DS_OUT/checkpoints/$name"
  cp -r "$dir/checkpoint" "$DS_OUT/checkpoints/$name"
  cp "$dir/loss.png" "$DS_OUT/curves/$name.png"
  cp "$dir/metrics.jsonl" "$DS_OUT/curves/$name.metrics.jsonl"
  cp "$dir/run.json" "$DS_OUT/curves/$name.run.json"
  out=$DS_OUT/eval-$name
  protocol=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['protocol']['name'])" "$dir/checkpoint/config.json")
  if ! .venv/bin/python -c "import json,sys; sys.exit(json.load(open(sys.argv[1])).get('status') != 'finished')" "$out/run.json" 2>/dev/null; then
    args=(eval --suite "$DS_SUITE" --tasks "$DS_TASKS" --trials "$DS_EVAL_TRIALS" --policy "$policy"
          --checkpoint "$DS_OUT/checkpoints/$name" --protocol "$protocol" --workers "$DS_WORKERS" --output "$out")
    [[ -n "$DS_EVAL_MAX_STEPS" ]] && args+=(--max-steps "$DS_EVAL_MAX_STEPS")
    [[ -d "$out" ]] && args+=(--resume)
    run "${args[@]}" $DS_EVAL_ARGS
  fi
  names+=("$name")
  runs+=("$out")
done
run report "${runs[@]}" --names "$(IFS=,; echo "${names[*]}")" --html "$DS_OUT/report.html" --json "$DS_OUT/report.json" > "$DS_OUT/report.md"
cat "$DS_OUT/report.md"
echo "comparison: $DS_OUT/report.md, $DS_OUT/report.html"
