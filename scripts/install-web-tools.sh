#!/usr/bin/env bash
# Installs the tools the wasm package, the browser tests and the GPU tests need (idempotent):
# wasm-bindgen-cli at the exact version of Cargo.lock, wasm-pack, binaryen (wasm-opt), Debian's
# Chromium (headless WebGPU on SwiftShader), Mesa's lavapipe (a Vulkan device without a GPU) and
# the npm packages of tests/ (playwright-core drives /usr/bin/chromium; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium chromium-driver)
command -v wasm-opt >/dev/null || need_apt+=(binaryen)
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd* >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# wasm-bindgen's CLI must equal the library version locked in Cargo.lock.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  # no --locked: one of the CLI's locked dependencies is gone from the registry.
  cargo install wasm-bindgen-cli --version "=$wb_version"
fi
command -v wasm-pack >/dev/null || cargo install wasm-pack

if [ -f tests/package.json ]; then
  (cd tests && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })
fi
