#!/usr/bin/env bash
# The side-by-side benchmarks (tests/bench/run.mjs): pocketlm (native, wasm in Node and Chromium,
# WebGPU) against @wllama/wllama and native llama.cpp on the same files. Installs what it needs:
# the project's tools (setup.sh, which also installs @wllama/wllama through tests/package.json)
# and llama-cpp-python (built from source, ~20 minutes on 2 cores; BENCH_NO_LLAMA_CPP=1 skips it).
# Arguments go to run.mjs (e.g. --models smollm2-135m --quants Q4_0 --runs 5 --gen 128).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${BENCH_NO_LLAMA_CPP:-}" ] && ! python3 -c "import llama_cpp" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check llama-cpp-python
fi
cargo build --release -p pocketlm-cli
scripts/build-pkg.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
node tests/bench/run.mjs "$@"
