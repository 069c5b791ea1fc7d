#!/usr/bin/env bash
# The small-scale VITA-VLA recipe on a CPU machine (`make distill-small`; docs/training.md):
#   1. collect expert demonstrations (real LIBERO; DS_EXPERT) for DS_TASKS of DS_SUITE, init states 0..DS_COLLECT_TRIALS-1,
#      with DART-style action noise (the env runs the expert's action plus noise, the demo keeps the
#      expert's own action as the label, so the demos show the expert correcting small deviations)
#   2. train the small Seer teacher on the demos of init states DS_TRAIN_INITS
#   3. stage 1 (align) + stage 2 (finetune) of the small VITA-VLA student; and a stage-2-only student
#   4. evaluate the three on init states 0..DS_EVAL_TRIALS-1 (no training demo started there) under the
#      protocol the checkpoints declare, and `vla-bench report` them into DS_OUT
# Settings come from the environment (the Makefile passes its DS_* variables). Every step skips what
# is already complete, and an interrupted step continues with --resume; an evaluation counts as
# complete only for the checkpoint it evaluated (same sha256).
set -euo pipefail
cd "$(dirname "$0")/.."

VLA_BENCH=${VLA_BENCH:-.venv/bin/vla-bench}
DS_OUT=${DS_OUT:-results/reference/distill-small}
DS_SUITE=${DS_SUITE:-libero_object}
DS_TASKS=${DS_TASKS:-0-2}
DS_COLLECT_TRIALS=${DS_COLLECT_TRIALS:-50}
DS_TRAIN_INITS=${DS_TRAIN_INITS:-10-49}
DS_EVAL_TRIALS=${DS_EVAL_TRIALS:-10}
DS_WORKERS=${DS_WORKERS:-2}
# the demonstrator: expert stops above the object and then dives (the students hovered at that switch in
# attempt 5); expert-funnel descends while it aligns, tried in attempt 6 and worse there (docs/training.md)
DS_EXPERT=${DS_EXPERT:-expert}
# std of the Gaussian noise on executed actions while collecting, in action units (position: 1 = 5 cm,
# rotation: 1 = 0.5 rad); 0 0: clean demonstrations
DS_ACTION_NOISE=${DS_ACTION_NOISE:-0.3}
DS_ROTATION_NOISE=${DS_ROTATION_NOISE:-0.05}
# the teacher's recipe: small-teacher-qpos.json reads the finger joints (as the student); small-teacher.json
# (its last gripper command, as Seer without --gripper_width) hovered above the object in attempt 4
DS_TEACHER_RECIPE=${DS_TEACHER_RECIPE:-small-teacher-qpos.json}
DS_TEACHER_STEPS=${DS_TEACHER_STEPS:-12000}
DS_ALIGN_STEPS=${DS_ALIGN_STEPS:-1000}
DS_FINETUNE_STEPS=${DS_FINETUNE_STEPS:-6000}
DS_BATCH=${DS_BATCH:-16}
# random-shift augmentation of the training images, in pixels of the stored 128 px images (0: off)
DS_AUGMENT_SHIFT=${DS_AUGMENT_SHIFT:-8}
# the small models start from random weights, so they get a higher learning rate than the paper's 1e-4
DS_TEACHER_LR=${DS_TEACHER_LR:-3e-4}
DS_ALIGN_LR=${DS_ALIGN_LR:-1e-3}
DS_FINETUNE_LR=${DS_FINETUNE_LR:-3e-4}
# stage 2's trained parts: the paper's (language model, action token, state encoder, mapper, decoder)
# plus the vision tower and projector, which the paper freezes because they are pretrained; the small
# student's are random, so the recipe trains them (recorded in each run.json's trainable_prefixes)
DS_FINETUNE_TRAINABLE=${DS_FINETUNE_TRAINABLE:-vlm.language_model action_token arm_state_encoder gripper_state_encoder state_projector action_mapper action_decoder arm_action_decoder gripper_action_decoder vlm.vision_tower vlm.mm_projector}
DS_PARALLEL=${DS_PARALLEL:-1}              # 1: the two stage-2 runs train side by side, one thread each
# torch threads of the sequential steps (default: every CPU)
DS_THREADS=${DS_THREADS:-$(getconf _NPROCESSORS_ONLN)}
export OMP_NUM_THREADS=$DS_THREADS
DS_SAVE_EVERY=${DS_SAVE_EVERY:-200}
# Policy steps per evaluation episode: 300, a recorded deviation from vita-vla's 600 for libero_object
# (the expert needs at most 175; OpenVLA's LIBERO protocol allows 280 for libero_object). Failed episodes
# run the whole limit, so 600 doubles their cost. Empty: the protocol's limit.
DS_EVAL_MAX_STEPS=${DS_EVAL_MAX_STEPS-300}
DS_TRAIN_ARGS=${DS_TRAIN_ARGS:-}           # extra flags for every train/distill step, e.g. --no-progress
DS_EVAL_ARGS=${DS_EVAL_ARGS:-}

WORK=$DS_OUT/work            # demonstrations and training state (not committed)
DATA=$WORK/demos.hdf5
TIMINGS=$DS_OUT/timings.tsv  # wall seconds of every step this script ran (appended; committed)
mkdir -p "$WORK"
[[ -f "$TIMINGS" ]] || printf 'step\twall_s\tstarted_utc\thost\tcpus\n' > "$TIMINGS"
run() { echo "+ vla-bench $*" >&2; "$VLA_BENCH" "$@"; }
timed() {  # $1: step name; the rest: the command. Appends the step's wall time to $TIMINGS
  local name=$1 start started; shift
  start=$(date +%s); started=$(date -u +%FT%TZ)
  "$@"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$(( $(date +%s) - start ))" "$started" "$(hostname)" "$(getconf _NPROCESSORS_ONLN)" >> "$TIMINGS"
}

# 1. demonstrations (a file is written only when collection finishes: a killed collection restarts)
if [[ ! -f "$DATA" ]]; then
  rm -rf "$WORK/collect.hdf5" "$WORK/collect-run"
  # images stored as rendered (128 px): training resizes them exactly as evaluation does for each model
  timed collect run collect --suite "$DS_SUITE" --tasks "$DS_TASKS" --trials "$DS_COLLECT_TRIALS" --protocol vita-vla --policy "$DS_EXPERT" \
      --action-noise "$DS_ACTION_NOISE" --rotation-noise "$DS_ROTATION_NOISE" --workers "$DS_WORKERS" --output "$WORK/collect.hdf5"
  mv "$WORK/collect.hdf5" "$DATA"
fi

train_step() {  # $1: run folder; the rest: the command and its flags
  local dir=$1 name; shift
  name=$(basename "$dir")
  if [[ -f "$dir/checkpoint/training.json" ]]; then  # written when the step finished
    echo "= $dir done"; return
  fi
  local resume=()
  [[ -f "$dir/state/latest" ]] && resume=(--resume)
  timed "$name" run "$@" --output "$dir" --data "$DATA" --init-states "$DS_TRAIN_INITS" --batch-size "$DS_BATCH" \
      --augment-shift "$DS_AUGMENT_SHIFT" --save-every "$DS_SAVE_EVERY" ${resume[@]+"${resume[@]}"} $DS_TRAIN_ARGS
}

# 2-3. teacher, student (align then finetune), stage-2-only student
train_step "$WORK/teacher" train --init "$DS_TEACHER_RECIPE" --steps "$DS_TEACHER_STEPS" --lr "$DS_TEACHER_LR"
TEACHER=$WORK/teacher/checkpoint
train_step "$WORK/student-align" distill --stage align --init small-student.json --teacher "$TEACHER" \
    --steps "$DS_ALIGN_STEPS" --lr "$DS_ALIGN_LR"
# shellcheck disable=SC2086
finetune=(distill --stage finetune --steps "$DS_FINETUNE_STEPS" --lr "$DS_FINETUNE_LR" --trainable $DS_FINETUNE_TRAINABLE)
if [[ $DS_PARALLEL == 1 ]]; then
  export OMP_NUM_THREADS=1
  train_step "$WORK/student" "${finetune[@]}" --init "$WORK/student-align/checkpoint" > "$WORK/student.log" 2>&1 &
  first=$!
  train_step "$WORK/student-stage2-only" "${finetune[@]}" --init small-student.json --teacher "$TEACHER" > "$WORK/student-stage2-only.log" 2>&1 &
  second=$!
  status=0
  wait "$first" || status=$?
  wait "$second" || status=$?
  export OMP_NUM_THREADS=$DS_THREADS
  tail -n 3 "$WORK/student.log" "$WORK/student-stage2-only.log"
  [[ $status == 0 ]] || { echo "a stage-2 run failed (logs: $WORK/student*.log)" >&2; exit "$status"; }
else
  train_step "$WORK/student" "${finetune[@]}" --init "$WORK/student-align/checkpoint"
  train_step "$WORK/student-stage2-only" "${finetune[@]}" --init small-student.json --teacher "$TEACHER"
fi

# 4. evaluation on held-out init states, then the comparison. An evaluation waits on its policy between
# env steps, so with DS_PARALLEL=1 the three run side by side (each its own DS_WORKERS env workers).
mkdir -p "$DS_OUT/checkpoints" "$DS_OUT/curves"
names=()
runs=()
pids=()
for pair in "teacher:seer:$WORK/teacher" "student:vita-vla:$WORK/student" "student-stage2-only:vita-vla:$WORK/student-stage2-only"; do
  IFS=: read -r name policy dir <<<"$pair"
  out=$DS_OUT/eval-$name
  names+=("$name")
  runs+=("$out")
  # done: $out evaluated this very checkpoint (same hash) to the end; resume: it began to; stale: it
  # evaluated another checkpoint (e.g. the committed one, in a fresh clone) and is moved aside, not reused
  state=$(.venv/bin/python - "$out/run.json" "$dir/checkpoint" <<'PY'
import json, sys
from pathlib import Path
from vla_bench.results.provenance import sha256_path
try:
    run = json.loads(Path(sys.argv[1]).read_text())
except (OSError, ValueError):
    print("fresh"); sys.exit()
same = (run.get("policy", {}).get("checkpoint") or {}).get("sha256") == sha256_path(Path(sys.argv[2]))
print(("done" if run.get("status") == "finished" else "resume") if same else "stale")
PY
)
  if [[ $state == done ]]; then
    echo "= $out done (evaluated this checkpoint)"; continue
  fi
  if [[ $state == stale && -d $out ]]; then
    aside=$DS_OUT/replaced-$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$aside"
    mv "$out" "$aside/eval-$name"
    [[ -d "$DS_OUT/checkpoints/$name" ]] && mv "$DS_OUT/checkpoints/$name" "$aside/checkpoint-$name"
    echo "= $out evaluated another checkpoint: moved to $aside, evaluating the new one"
  fi
  rm -rf "$DS_OUT/checkpoints/$name"
  cp -r "$dir/checkpoint" "$DS_OUT/checkpoints/$name"
  cp "$dir/loss.png" "$DS_OUT/curves/$name.png"
  cp "$dir/metrics.jsonl" "$DS_OUT/curves/$name.metrics.jsonl"
  cp "$dir/run.json" "$DS_OUT/curves/$name.run.json"
  protocol=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['protocol']['name'])" "$dir/checkpoint/config.json")
  args=(eval --suite "$DS_SUITE" --tasks "$DS_TASKS" --trials "$DS_EVAL_TRIALS" --policy "$policy"
        --checkpoint "$DS_OUT/checkpoints/$name" --protocol "$protocol" --workers "$DS_WORKERS" --output "$out")
  [[ -n "$DS_EVAL_MAX_STEPS" ]] && args+=(--max-steps "$DS_EVAL_MAX_STEPS")
  [[ -d "$out" ]] && args+=(--resume)
  if [[ $DS_PARALLEL == 1 ]]; then
    # shellcheck disable=SC2086
    timed "eval-$name" run "${args[@]}" $DS_EVAL_ARGS > "$WORK/eval-$name.log" 2>&1 &
    pids+=($!)
  else
    # shellcheck disable=SC2086
    timed "eval-$name" run "${args[@]}" $DS_EVAL_ARGS
  fi
done
status=0
for pid in ${pids[@]+"${pids[@]}"}; do
  wait "$pid" || status=$?
done
[[ $status == 0 ]] || { echo "an evaluation failed (logs: $WORK/eval-*.log)" >&2; exit "$status"; }
run report "${runs[@]}" --names "$(IFS=,; echo "${names[*]}")" --differences student:student-stage2-only,student:teacher --html "$DS_OUT/report.html" --json "$DS_OUT/report.json" > "$DS_OUT/report.md"
cat "$DS_OUT/report.md"
echo "comparison: $DS_OUT/report.md, $DS_OUT/report.html"
