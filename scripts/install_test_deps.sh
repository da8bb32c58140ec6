#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine. Idempotent and
# quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# redis-server: the login limiter's shared store (tests start their own on a free port).
apt_packages=(mariadb-server galera-4 rsync mariadb-backup socat chromium nginx-light openssl
  redis-server)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts nothing we need; make sure a packaged mariadb service doesn't hold ports.
$SUDO systemctl disable --now mariadb >/dev/null 2>&1 || true
$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
.venv/bin/pip install --quiet -r requirements-dev.txt

if [ -x scripts/install_deploy_tools.sh ]; then
  bash scripts/install_deploy_tools.sh
fi
echo "test dependencies ready"
