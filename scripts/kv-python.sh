#!/usr/bin/env bash
# Prints a python3 that has PyYAML and the pinned kubernetes-validate (schemas for Kubernetes
# 1.25 .. 1.37), installing them into a cached virtualenv when the current python3 lacks them.
# Shared by .ci/manifests.sh and .ci/helm.sh.
#
#   PY="$(scripts/kv-python.sh)"
set -euo pipefail

KV_VERSION=1.37.0

has_kv() {
  "$1" -c "import sys, yaml, kubernetes_validate.version as v; sys.exit(v.__version__ != '$KV_VERSION')" 2>/dev/null
}

if has_kv python3; then
  command -v python3
  exit 0
fi
VENV="${AZWI_MANIFESTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/azwi-webhook/manifests-venv}"
if ! has_kv "$VENV/bin/python"; then
  echo "installing kubernetes-validate==$KV_VERSION into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION" >&2
fi
echo "$VENV/bin/python"
