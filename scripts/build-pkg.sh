#!/usr/bin/env bash
# Builds the npm package into pkg/: one wasm-pack build per entry of wasm-pack.toml into
# pkg/wasm/<name>/, then the JS glue of crate/js/ and the model registry beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY' > /tmp/pocketlm-builds.txt
import tomllib
for b in tomllib.load(open("wasm-pack.toml", "rb"))["build"]:
    print(b["name"], b["target"], b.get("target_dir", "target"), b["rustflags"], b.get("toolchain", "default"), b.get("cargo_args", "-"), sep="\t")
PY
while IFS=$'\t' read -r name target target_dir rustflags toolchain cargo_args; do
  echo "== pkg/wasm/$name ($toolchain: $rustflags$([ "$cargo_args" = - ] || echo " $cargo_args"))"
  extra=(); [ "$cargo_args" = "-" ] || read -ra extra <<< "$cargo_args"
  run=(); [ "$toolchain" = "default" ] || run=(rustup run "$toolchain")
  CARGO_TARGET_DIR="$PWD/$target_dir" RUSTFLAGS="$rustflags" \
    ${run[@]+"${run[@]}"} wasm-pack --quiet build crate --release --target "$target" --out-dir "../pkg/wasm/$name" --out-name pocketlm --no-pack ${extra[@]+-- "${extra[@]}"}
  rm -f "pkg/wasm/$name/.gitignore"
  # The function names (2.2 MB raw of the threaded module) stay only when asked, for profiling
  # (tests/bench/profile.mjs): POCKETLM_KEEP_NAMES=1 scripts/build-pkg.sh.
  [ "${POCKETLM_KEEP_NAMES:-0}" = 1 ] || python3 scripts/strip-wasm-names.py "pkg/wasm/$name/pocketlm_bg.wasm"
  # The threaded build's pool workers get the 1 MB stack of the module's first thread (which runs
  # the whole forward pass in the other builds) instead of wasm-bindgen's 2 MB default.
  for helper in pkg/wasm/"$name"/snippets/wasm-bindgen-rayon-*/src/workerHelpers*.js; do
    [ -e "$helper" ] && python3 scripts/set-worker-stack.py "$helper" 1048576
  done
done < /tmp/pocketlm-builds.txt
cp crate/js/*.js crate/js/*.d.ts pkg/
cp models/registry.json pkg/registry.json
mkdir -p pkg/models && cp models/TinyStories-656K-Q8_0.gguf models/LICENSE-TinyStories-656K.md pkg/models/
version=$(awk -F'"' '/^version = / { print $2; exit }' crate/Cargo.toml)
sed "s/\"version\": \"0.0.0\"/\"version\": \"$version\"/" crate/js/package.json > pkg/package.json
for name in $(cut -f1 /tmp/pocketlm-builds.txt); do
  printf '%s: %s bytes, %s gzip\n' "pkg/wasm/$name/pocketlm_bg.wasm" "$(stat -c %s pkg/wasm/$name/pocketlm_bg.wasm)" "$(gzip -9c pkg/wasm/$name/pocketlm_bg.wasm | wc -c)"
done
