#!/usr/bin/env bash
# The wall-time comparison behind docs/benchmarks.md ("Same wall time"): every method trains
# for 60 s (the Fine-tune dock's and the demo's default budget) with 2 torch threads on an
# otherwise idle 2-core machine, batch 8 x 256^2, fold 0 of 3, seeds 0-2, both regimes.
#   $1 = a candidate default model on the ImageNet EfficientNet-Lite0 encoder, made with
#        sample_data/make_default_model.py --backbone timm:tf_efficientnet_lite0 --encoder-weights $2
#   $2 = those encoder weights (sample_data/encoder_weights.py), also used by unet:lite0
# Resumable (finished runs are skipped). About 75 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
R=benchmarks/results
OUT="$R/accuracy_60s.jsonl"
W=(--seconds 60 --batch 8 --crop 256 --k 3 --folds 0 --seeds 0 1 2 --regimes scribbles dense --out "$OUT")
for ds in wsss4luad cpm15; do
  python benchmarks/accuracy.py run --datasets "$ds" "${W[@]}" --methods dfa unet plain
  python benchmarks/accuracy.py run --datasets "$ds" "${W[@]}" --methods dfa --init "$1"
  python benchmarks/accuracy.py run --datasets "$ds" "${W[@]}" --methods unet:lite0 --encoder-weights "$2"
done
python benchmarks/accuracy.py report --out "$OUT" --md "$R/accuracy_60s_tables.md"
