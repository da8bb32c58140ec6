#!/usr/bin/env bash
# Re-fetches the vendored front-end files from the npm registry (see static/vendor/VERSIONS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent htmx.org@2.0.11 jsqr@1.4.0 qrcode-generator@1.4.4 >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
cp htmx.org-2.0.11/package/dist/htmx.min.js "$root/static/vendor/htmx-2.0.11.min.js"
cp jsqr-1.4.0/package/dist/jsQR.js "$root/static/vendor/jsQR-1.4.0.js"
cp qrcode-generator-1.4.4/package/qrcode.js "$root/static/vendor/qrcode-generator-1.4.4.js"
echo "vendored files refreshed in static/vendor"
