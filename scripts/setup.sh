#!/usr/bin/env bash
# Installs everything pocketlm's build and tests need on a fresh machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The threaded wasm build (wasm-pack.toml "threads") rebuilds std with atomics: nightly's
# wasm32 target and rust-src.
rustup +nightly target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup +nightly target add wasm32-unknown-unknown
rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly
# wasm-bindgen-cli, wasm-pack, wasm-opt, Chromium, lavapipe, the npm tools of tests/.
scripts/install-web-tools.sh
# Python tools: gguf + numpy write the synthetic real-shape models the tests regenerate.
python3 -c "import gguf, numpy" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check gguf numpy
if [ ! -d ../shared/models ]; then
  echo "setup: ../shared/models is missing: the tests read the real tiny models from there" >&2
  exit 1
fi
