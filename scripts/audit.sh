#!/usr/bin/env bash
# `make audit`: is the card page fast, accessible and small?
#
#   scripts/audit.sh install   install Lighthouse and axe-core from npm into tools/audit
#   scripts/audit.sh install-axe   only axe-core (what e2e/test_audit.py needs)
#   scripts/audit.sh           install if needed, then
#                               1. Lighthouse (mobile) on the signed-in card page, with
#                                  thresholds: performance >= 95, accessibility 100, best
#                                  practices 100, transfer < 60 KB (scripts/lighthouse_card.py)
#                               2. axe-core via Playwright on register, login, card,
#                                  family and till (e2e/test_audit.py)
#
# Lighthouse is pinned to 12.2.3: 13.x needs Node 22 and Debian 12 has Node 20.
# Everything lands in tools/audit (git-ignored) and reports/audit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools/audit"
LIGHTHOUSE_VERSION=12.2.3
AXE_VERSION=4.14.1

install() {
  if [ -x "$tools/node_modules/.bin/lighthouse" ] \
      && [ -f "$tools/node_modules/axe-core/axe.min.js" ] \
      && grep -q "\"$LIGHTHOUSE_VERSION\"" "$tools/package.json" 2>/dev/null \
      && grep -q "\"$AXE_VERSION\"" "$tools/package.json" 2>/dev/null; then
    return 0
  fi
  if ! command -v npm >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  mkdir -p "$tools"
  echo "installing lighthouse@$LIGHTHOUSE_VERSION and axe-core@$AXE_VERSION into $tools"
  (cd "$tools" && npm install --save-exact --no-audit --no-fund --silent \
    "lighthouse@$LIGHTHOUSE_VERSION" "axe-core@$AXE_VERSION")
}

install_axe() {  # what e2e/test_audit.py needs, without Lighthouse's ~70 MB
  [ -f "$tools/node_modules/axe-core/axe.min.js" ] \
    && grep -q "\"$AXE_VERSION\"" "$tools/node_modules/axe-core/package.json" && return 0
  mkdir -p "$tools"
  echo "installing axe-core@$AXE_VERSION into $tools"
  (cd "$tools" && npm install --save-exact --no-audit --no-fund --silent "axe-core@$AXE_VERSION")
}

case "${1:-run}" in
  install)
    install
    ;;
  install-axe)
    install_axe
    ;;
  run)
    install
    py="$root/.venv/bin/python"
    [ -x "$py" ] || py=python3
    cd "$root"
    status=0
    PYTHONPATH="$root" "$py" -m scripts.lighthouse_card || status=1
    "$py" -m pytest e2e/test_audit.py -q -p no:cacheprovider || status=1
    exit $status
    ;;
  *)
    echo "usage: $0 [install|install-axe|run]" >&2
    exit 2
    ;;
esac
