#!/usr/bin/env bash
# The CPU study (README, "When does pre-training pay off?"), part 2: every checkpoint of both runs
# of part 1 (docs/study/pretrain.sh) fine-tuned on the two shipped tasks, 3 seeds each, against
# the same architecture from random init; then the low-resource variant (32 and 256 labelled
# examples per class, 10 epochs: Google's count for its small tasks) on three checkpoints of each run
# at equal FLOPs (early, middle, last: the two halves then take about as long). Run from the repository root; safe to re-run: each curve file keeps what is done
# and the same command continues it. `finetune.sh full` or `finetune.sh low` runs one half (two
# processes can share the machine).
set -euo pipefail
PY=${PY:-.venv/bin/python}
RUNS=${STUDY_DIR:-checkpoints/study}
OUT=${STUDY_OUT:-docs/study}
ELECTRA=$RUNS/study_electra_11081
MLM=$RUNS/study_mlm_11081

task() {  # task NAME: the flags of a shipped task, at the pre-training length
  echo --train data/tasks/$1/train.tsv --dev data/tasks/$1/dev.tsv --task_type classification --max_length 64 --quiet
}

full() {
  # four checkpoints of each run at equal FLOPs on both tasks first, then the rest of them (`all`
  # continues the same files), so a cut-short session still has the whole span
  for t in libreoffice_module gimp_section; do
    "$PY" -m finetune --model "$ELECTRA" --checkpoints 1000,4000,12000,20000 $(task $t) --out "$OUT/curve_$t.json"
    "$PY" -m finetune --model "$MLM" --checkpoints 1253,5013,15040,25067 $(task $t) --out "$OUT/curve_$t.json"
  done
  for t in libreoffice_module gimp_section; do
    "$PY" -m finetune --model "$ELECTRA" "$MLM" --checkpoints all $(task $t) --out "$OUT/curve_$t.json"
  done
}

low() {
  for n in 32 256; do
    for t in libreoffice_module gimp_section; do
      out="$OUT/curve_${t}_${n}per_class.json"
      # equal FLOPs: the MLM run's checkpoints at ELECTRA's steps x 1.2534 (docs/study/pretrain.sh)
      "$PY" -m finetune --model "$ELECTRA" --checkpoints 1000,4000,20000 $(task $t) \
          --train_per_class $n --epochs 10 --out "$out"
      "$PY" -m finetune --model "$MLM" --checkpoints 1253,5013,25067 $(task $t) \
          --train_per_class $n --epochs 10 --out "$out"
    done
  done
}

case "${1:-all}" in
  full) full ;;
  low) low ;;
  all) full; low ;;
  *) echo "usage: $0 [full|low|all]" >&2; exit 2 ;;
esac
