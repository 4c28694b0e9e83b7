#!/usr/bin/env bash
# The reproduction runs of results/README.md: the seed's configurations (../shared/seed/results
# config.json files), on this machine's default backend (WebGPU on lavapipe, float32). Each run
# writes <experiment>/res_<solver>_<setting>_<seed>/{config,results}.json; existing runs are kept
# (cli.ts train refuses to overwrite them), so the script can be re-run to fill in missing ones.
set -uo pipefail
cd "$(dirname "$0")/.."
DENO="${DENO:-deno}"
run() { # experiment name, then cli.ts train flags
  local exp=$1 name=$2; shift 2
  if [ -f "results/$exp/$name/results.json" ]; then echo "skip $exp/$name"; return; fi
  echo "== $exp/$name"
  "$DENO" run -A cli.ts train --path "results/$exp" --f "$name" "$@" || echo "FAILED $exp/$name"
}
SGN=(--solver SGN --rho 0.0001 --rho_min 0.000001 --TR true --LS true --cg_min_iter 10 --K_cg 10)
for s in 1 2 3; do
  run mnist "res_SGN_3_$s" --dataset mnist --layers 20 20 20 "${SGN[@]}" --cg_max_iter 3 --epochs 5 --seed "$s"
done
for s in 1 2 3; do
  run mnist "res_SGD_1_$s" --dataset mnist --layers 20 20 20 --solver SGD --lr 1 --epochs 5 --seed "$s"
done
for s in 1 2 3; do
  run sine_10 "res_SGN_10_$s" --dataset sine_10 --layers 20 20 20 "${SGN[@]}" --cg_max_iter 10 --epochs 10 --seed "$s"
done
for s in 1 2 3; do
  run boston "res_SGN_10_$s" --dataset boston --layers 100 100 --batch_size 101 "${SGN[@]}" --cg_max_iter 10 --epochs 10 --seed "$s"
done
for s in 1 2 3; do
  run fashion "res_SGN_3_$s" --dataset fashion --architecture architecture_1 "${SGN[@]}" --cg_max_iter 3 --epochs 2 --seed "$s"
done
