#!/usr/bin/env bash
# The real-data figures of experiments/RESULTS.md. Needs ../shared/data (never committed).
# Usage: bash experiments/real_data.sh [DATA_DIR]   (about 20 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data}"
out=experiments/results
mkdir -p "$out"
mosi="$data/mosi-acl17/mosi_acl17_minilm.pkl"

# 1. the default hand-set HAEMSA ("w/o evolution"), 5 seeds
evo-msa train --data "$mosi" --seeds 0 1 2 3 4 --device cpu --out "$out/mosi-default"
evo-msa train --data "$data/iemocap-text/iemocap_text_minilm.pkl" --seeds 0 1 2 3 4 \
  --device cpu --out "$out/iemocap-default"

# 2. evolution vs random search, same budget (pop 16 x 8 generations), final 5 seeds on test
for strategy in evolution random; do
  rm -rf "runs/mosi-$strategy"
  evo-msa search --space search_spaces/haemsa.yaml --data "$mosi" --pop 16 --generations 8 \
    --strategy "$strategy" --seed 0 --device cpu --out "runs/mosi-$strategy"
  mkdir -p "$out/mosi-$strategy"
  cp runs/mosi-$strategy/{leaderboard.csv,best_genome.json,final.json,final.csv,progress.png} \
    "$out/mosi-$strategy/"
done
