#!/usr/bin/env bash
# The demo uses the package as a site would: pkg/ copied into www/pkg/ (the service worker's
# scope then covers the page, the engine's worker and the wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f pkg/index.js ] || scripts/build-pkg.sh
rm -rf www/pkg && cp -r pkg www/pkg && rm -f www/pkg/README.md
