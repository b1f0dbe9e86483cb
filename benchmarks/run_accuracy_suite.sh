#!/usr/bin/env bash
# The full accuracy suite behind docs/benchmarks.md, in the order it was run (resumable:
# finished runs in the JSONL are skipped). About 7 CPU-hours on the 2-core dev machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/results/accuracy.jsonl
COMMON=(--datasets wsss4luad cpm15 --regimes scribbles dense --seeds 0 1 2 --steps 80 --crop 192 --out "$OUT")
# 1. DFA (default configuration) vs every baseline and the random-forest anchor
python benchmarks/accuracy.py run "${COMMON[@]}" \
  --methods plain inverse_freq median_freq effective_number focal logit_adjust cdb dfa rf
# 2. DFA ablations: placement, initialisation, frozen prior
python benchmarks/accuracy.py run "${COMMON[@]}" \
  --methods dfa:key:neg_log_freq dfa:query:log_freq dfa:query:zero dfa:query:neg_log_freq:frozen
python benchmarks/accuracy.py report --out "$OUT" --md benchmarks/results/accuracy_tables.md
