#!/usr/bin/env bash
# The CPU study (README, "When does pre-training pay off?"), part 1: ELECTRA `mini` and the MLM
# baseline pre-trained at equal compute on the shipped Japanese corpus. Run from the repository
# root. Safe to re-run: a finished run is skipped, an interrupted one resumes from its latest
# checkpoint. On a shared 2-core machine run it with OMP_NUM_THREADS=1.
#
# Equal FLOPs: pretrain/run/flops.py counts 1.5375e10 FLOPs per ELECTRA `mini` step on docs_ja
# (generator + discriminator) and 1.2267e10 per MLM step (one model of the discriminator's size),
# a ratio of 1.2534; the MLM run's steps and checkpoints are ELECTRA's times that ratio.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${STUDY_DIR:-checkpoints/study}
COMMON=(--size mini --datas docs_ja --tokenizer data/docs_ja/tokenizer --valid_size 500 --checkpoint_dir "$OUT"
        --num_workers 0 --num_proc 2)

run() {  # run NAME FLAGS...: pre-train, or resume the run's latest checkpoint if it has one
  local name=$1; shift
  local resume=()
  if compgen -G "$OUT/${name}_11081_*.pth" > /dev/null; then resume=(--resume latest); fi
  "$PY" -m pretrain "${COMMON[@]}" --base_run_name "$name" "$@" "${resume[@]}"
}

run study_electra --objective electra --steps 20000 --save_points 500 1000 2000 4000 8000 12000 16000 20000
run study_mlm --objective mlm --steps 25067 --save_points 627 1253 2507 5013 10027 15040 20054 25067
