#!/usr/bin/env bash
# The paper-scale VITA-VLA recipe on a GPU node, one command: teacher, stage 1, stage 2 (DESIGN §6:
# AdamW lr 1e-4, weight decay 1e-4, 10% warm-up then cosine decay, bf16; history 7, chunks of 3).
#
#   DATA="libero_10/*.hdf5" TEACHER_INIT=ckpt/seer-large STUDENT_INIT=ckpt/vita-1.5 bash scripts/distill_paper.sh
#
# TEACHER_INIT / STUDENT_INIT: checkpoint directories with the pretrained encoders / VLM imported
# (`vla-bench import-checkpoint`); the packaged paper-*.json recipes build the same shapes with random
# weights. Each stage runs under `accelerate launch` with vla_bench/training/recipes/accelerate-fsdp-8gpu.yaml
# (override ACCELERATE_CONFIG); every stage resumes where it stopped when rerun.
# Not run here (no GPU in this repository's CI): see docs/training.md for what is verified.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DATA:?DATA: the LIBERO HDF5 demonstration files (a glob or a space-separated list)}"
TEACHER_INIT=${TEACHER_INIT:-vla_bench/training/recipes/paper-teacher.json}
STUDENT_INIT=${STUDENT_INIT:-vla_bench/training/recipes/paper-student.json}
OUT=${OUT:-runs/paper}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-vla_bench/training/recipes/accelerate-fsdp-8gpu.yaml}
TEACHER_STEPS=${TEACHER_STEPS:-40000}
ALIGN_STEPS=${ALIGN_STEPS:-10000}
FINETUNE_STEPS=${FINETUNE_STEPS:-40000}
BATCH=${BATCH:-4}          # windows per GPU
GRAD_ACCUM=${GRAD_ACCUM:-1}
EXTRA=${EXTRA:-}

launch() {  # $1: run folder; the rest: the vla-bench command
  local dir=$1; shift
  [[ -f "$dir/checkpoint/training.json" ]] && { echo "= $dir done"; return; }
  local resume=()
  [[ -f "$dir/state/latest" ]] && resume=(--resume)
  # shellcheck disable=SC2086
  accelerate launch --config_file "$ACCELERATE_CONFIG" -m vla_bench.cli "$@" --output "$dir" --data $DATA \
    --mixed-precision bf16 --batch-size "$BATCH" --grad-accum "$GRAD_ACCUM" --lr 1e-4 --weight-decay 1e-4 \
    --warmup 0.1 --no-progress ${resume[@]+"${resume[@]}"} $EXTRA
}

# The released Seer trains with the CLIP text encoder and the MAE ViT frozen.
launch "$OUT/teacher" train --init "$TEACHER_INIT" --steps "$TEACHER_STEPS" --frozen text_encoder vision_encoder
launch "$OUT/student-align" distill --stage align --init "$STUDENT_INIT" --teacher "$OUT/teacher/checkpoint" --steps "$ALIGN_STEPS"
launch "$OUT/student" distill --stage finetune --init "$OUT/student-align/checkpoint" --steps "$FINETUNE_STEPS"
echo "evaluate: vla-bench eval --suite libero_10 --policy vita-vla --checkpoint $OUT/student/checkpoint --protocol vita-vla --device cuda"
