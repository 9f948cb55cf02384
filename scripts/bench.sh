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
  # Built for this CPU (-march=native) but without AMX: on the Xeons of these machines its
  # AMX mat-mul dies at its first `ldtilecfg` (SIGSEGV, the sandbox gives no AMX tile state),
  # and most users' x86 CPUs have none. (GCC's explicit -mno-* win over -march=native.)
  flags=""
  if [ "$(uname -m)" = x86_64 ]; then
    no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    flags="-DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"
  fi
  CMAKE_ARGS="${CMAKE_ARGS:-} $flags" python3 -m pip install --quiet --disable-pip-version-check llama-cpp-python
fi
cargo build --release -p pocketlm-cli
scripts/build-pkg.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
node tests/bench/run.mjs "$@"
