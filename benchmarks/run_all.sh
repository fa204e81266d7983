#!/usr/bin/env bash
# Measures every figure the README quotes. Needs the real data in ../shared (see README).
# Usage: bash benchmarks/run_all.sh [log file]   (about 40 minutes on 2 cores, plus about 80 for fine-tuning and its evaluation)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH=.
CIFAR=${CIFAR_DIR:-../shared/datasets/cifar10}
WORDSIM=${WORDSIM_DIR:-../shared/eval/wordsim}
run() { echo "\$ $*"; /usr/bin/time -f "(wall %e s)" "$@"; echo; }

echo "## word similarity (Spearman)"
for model in hashing wordllama minilm local-raw local; do
  for set in EN-WS-353-ALL EN-WS-353-SIM EN-WS-353-REL EN-SIMLEX-999; do
    run $PY -m embeddings eval-words "$WORDSIM/$set.txt" --model $model
  done
done

echo "## image retrieval, leave-one-out on the CIFAR-10 test split"
for model in pixels efficientnet_lite0; do
  run $PY -m embeddings build-index --data "$CIFAR" --split test --model $model
  run $PY -m embeddings eval-images --data "$CIFAR" --split test --model $model --k 10
done
run $PY -m embeddings eval-images --data sample --model efficientnet_lite0 --k 10

echo "## image embedding throughput"
run $PY -m embeddings bench-images --data "$CIFAR" --split test --model efficientnet_lite0 --n 1000
run $PY -m embeddings bench-images --data "$CIFAR" --split test --model pixels --n 1000
run $PY benchmarks/bench_runtimes.py --data "$CIFAR" --n 512   # ONNX Runtime vs OpenVINO (if installed)
run env EMBEDDINGS_THREADS=1 $PY benchmarks/bench_runtimes.py --data "$CIFAR" --n 512   # the same on one core
run $PY benchmarks/bench_int8.py --data "$CIFAR" --calibration 256
run $PY benchmarks/bench_input_size.py --data "$CIFAR" --sizes 96,128,160,192,224

echo "## maps"
run $PY benchmarks/bench_exports.py --data "$CIFAR" --split test   # the downloads' build times
run $PY benchmarks/bench_maps.py --data "$CIFAR" --split test --model efficientnet_lite0
run $PY benchmarks/bench_trust.py --data "$CIFAR" --split test --model efficientnet_lite0

echo "## full index (train split, 50,000 images) and search latency"
run $PY -m embeddings build-index --data "$CIFAR" --split train --model efficientnet_lite0
run $PY -m embeddings eval-images --data "$CIFAR" --split test --index-split train --model efficientnet_lite0 --k 10
run $PY benchmarks/bench_search_full.py --data "$CIFAR" --model efficientnet_lite0 --queries 1000
echo "## past one machine: local vs Ray engine (the Ray part needs requirements-ray.txt), IVF-PQ at 60,000 vectors"
run $PY benchmarks/bench_scale.py --data "$CIFAR" --images 2000
echo "## better neighbours (test queries, train index); fine-tuning takes about 80 minutes on 2 cores"
run $PY benchmarks/bench_textpost.py --wordsim "$WORDSIM"
run $PY benchmarks/bench_better_neighbours.py heads --data "$CIFAR"
run $PY benchmarks/bench_better_neighbours.py rerank --data "$CIFAR"
run $PY -m embeddings eval-images --data sample --model efficientnet_lite0-logreg-d5e90d43 --k 10
for rr in none aqe kreciprocal; do
  run $PY -m embeddings eval-images --data sample --model efficientnet_lite0 --rerank $rr --k 10
done
for model in pixels efficientnet_lite0; do
  run $PY -m embeddings eval-images --data "$CIFAR" --split test --index-split train --model $model --adapt head --k 10
done
run $PY -m embeddings finetune --data "$CIFAR" --model efficientnet_lite0 --resolution 128 --epochs 4
for rr in none aqe kreciprocal; do
  run $PY -m embeddings eval-images --data "$CIFAR" --split test --index-split train --model efficientnet_lite0 --adapt finetune --rerank $rr --k 10
done

echo "## k-NN classification: test queries against the train index, and leave-one-out on the test split"
run $PY -m embeddings eval-knn --data "$CIFAR" --split train --query-split test --model efficientnet_lite0
run $PY -m embeddings eval-knn --data "$CIFAR" --split test --model efficientnet_lite0
KNN_HEAD=$($PY -m embeddings fit-head --data "$CIFAR" --model efficientnet_lite0 | sed -n 's/^model id: //p')
run $PY -m embeddings eval-knn --data "$CIFAR" --split train --query-split test --model "$KNN_HEAD"
run $PY -m embeddings eval-knn --data "$CIFAR" --split test --model "$KNN_HEAD"
run $PY -m embeddings eval-knn --data sample --model efficientnet_lite0
run $PY -m embeddings eval-knn --data sample --model efficientnet_lite0-logreg-d5e90d43
run $PY benchmarks/bench_knn.py --data "$CIFAR" --split test --model efficientnet_lite0
echo "## near-duplicates and label conflicts (CIFAR-10, efficientnet_lite0)"
run $PY benchmarks/duplicate_bands.py --data "$CIFAR" --model efficientnet_lite0
for t in 0.85 0.88 0.90 0.92 0.95; do
  run $PY -m embeddings find-duplicates --data "$CIFAR" --model efficientnet_lite0 --split test --against train --threshold $t
done
run $PY -m embeddings find-duplicates --data "$CIFAR" --model efficientnet_lite0 --split test --threshold 0.90
run $PY -m embeddings find-duplicates --data "$CIFAR" --model efficientnet_lite0 --split train --threshold 0.90
run $PY -m embeddings find-label-conflicts --data "$CIFAR" --model efficientnet_lite0 --split test

echo "## MiniLM: torch against ONNX Runtime"
run $PY benchmarks/bench_text_runtime.py --passages 300

echo "## app cold start and clicks (built index), against a checkout of the release before"
git worktree add /tmp/base 000afda 2>/dev/null || true
run $PY benchmarks/bench_app.py --baseline /tmp/base
run $PY benchmarks/cold_start_timeline.py --runs 3
run $PY benchmarks/bench_first_use.py
run $PY benchmarks/bench_rerun.py
run $PY benchmarks/bench_clicks.py --baseline e10e9f3 --clicks 40
