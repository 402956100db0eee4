#!/usr/bin/env bash
# Render and validate the Kubernetes manifests offline (called by .ci/run).
#
#   .ci/manifests.sh            # from the repository root (or anywhere)
#
# 1. every kustomization (base, overlays, base+all components, examples) is
#    rendered with `kubectl kustomize`;
# 2. every object is validated in strict mode against the Kubernetes schemas of
#    several versions with kubernetes-validate (pinned below);
# 3. property checks (probes, flags, RBAC, security, webhook configuration,
#    ports, namespaces, cert-manager wiring, example RBAC);
# 4. a self-test proving that broken variants of the manifests are rejected.
# See scripts/validate-manifests.py for the list of checks.
#
# Needs python3 and kubectl (or kustomize). kubernetes-validate is installed
# into a cached virtualenv if the current python3 lacks the pinned version.
set -euo pipefail

KV_VERSION=1.37.0   # kubernetes-validate: schemas for Kubernetes 1.25 .. 1.37

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  echo "manifests: need kubectl (>= 1.21, has kustomize built in) or kustomize on PATH" >&2
  exit 1
fi

has_kv() {
  "$1" -c "import sys, kubernetes_validate.version as v; sys.exit(v.__version__ != '$KV_VERSION')" 2>/dev/null
}

PY=python3
if ! has_kv "$PY"; then
  VENV="${AZWI_MANIFESTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/azwi-webhook/manifests-venv}"
  if ! has_kv "$VENV/bin/python"; then
    echo "manifests: installing kubernetes-validate==$KV_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
  fi
  PY="$VENV/bin/python"
fi

echo "manifests: kubernetes-validate $KV_VERSION, $(kubectl version --client 2>/dev/null | grep -i kustomize || echo kustomize)"
"$PY" scripts/validate-manifests.py
"$PY" scripts/validate-manifests.py --self-test >/dev/null || {
  # Re-run verbosely so the log shows which broken variant slipped through.
  "$PY" scripts/validate-manifests.py --self-test
  exit 1
}
echo "manifests: self-test passed (broken variants are rejected)"
