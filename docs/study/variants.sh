#!/usr/bin/env bash
# The CPU study (README, "When does pre-training pay off?"), part 3 (issue 18, item 5): ELECTRA
# `mini`'s fine-tuning gain stayed below zero with full training sets, so two small-budget changes
# from Cramming (Geiping & Goldstein 2022) were tried, each alone, on part 1's 20,000-step schedule
# (docs/study/pretrain.sh): no dropout during pre-training (--dropout 0; the export keeps 0.1 for
# fine-tuning), and twice the peak learning rate (--lr 1e-3; the warm-up is already short, 300
# steps). Every checkpoint is then fine-tuned into part 2's curve files (docs/study/finetune.sh),
# beside part 1's runs and the shared random init. The learning-rate run was stopped after its
# 8,000-step checkpoint (README: it was behind part 1 there); `finetune` takes the checkpoints a run
# has. Run from the repository root; safe to re-run (a run resumes, a curve file keeps what is
# done). On 2 cores run the two runs side by side with OMP_NUM_THREADS=1:
# `variants.sh nodropout`, `variants.sh lr`, then `variants.sh finetune`.
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=${STUDY_DIR:-checkpoints/study}
OUT=${STUDY_OUT:-docs/study}
COMMON=(--size mini --datas docs_ja --tokenizer data/docs_ja/tokenizer --valid_size 500 --checkpoint_dir "$RUNS"
        --num_workers 0 --num_proc 2 --objective electra --steps 20000 --save_points 4000 8000 12000 16000 20000)

run() {  # run NAME FLAGS...: pre-train, or resume the run's latest checkpoint if it has one
  local name=$1; shift
  local resume=()
  if compgen -G "$RUNS/${name}_11081_*.pth" > /dev/null; then resume=(--resume latest); fi
  "$PY" -m pretrain "${COMMON[@]}" --base_run_name "$name" "$@" "${resume[@]}"
}

finetune() {  # every checkpoint of both runs, both shipped tasks, 3 seeds, into part 2's curve files
  for t in libreoffice_module gimp_section; do
    "$PY" -m finetune --model "$RUNS/study_nodropout_11081" "$RUNS/study_lr1e-3_11081" --checkpoints all \
        --train data/tasks/$t/train.tsv --dev data/tasks/$t/dev.tsv --task_type classification --max_length 64 --quiet \
        --out "$OUT/curve_$t.json"
  done
}

case "${1:-all}" in
  nodropout) run study_nodropout --dropout 0 ;;
  lr) run study_lr1e-3 --lr 1e-3 ;;
  finetune) finetune ;;
  all) run study_nodropout --dropout 0; run study_lr1e-3 --lr 1e-3; finetune ;;
  *) echo "usage: $0 [nodropout|lr|finetune|all]" >&2; exit 2 ;;
esac
