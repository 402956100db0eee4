#!/usr/bin/env bash
# Render and validate the Kubernetes manifests offline (called by .ci/run).
#
#   .ci/manifests.sh            # from the repository root (or anywhere)
#
# 1. every kustomization (base, overlays, base+all components, examples) is
#    rendered with `kubectl kustomize`;
# 2. every object is validated in strict mode against the Kubernetes schemas of
#    several versions with kubernetes-validate (pinned in scripts/kv-python.sh);
# 3. property checks (probes, flags, RBAC, security, webhook configuration,
#    ports, namespaces, cert-manager wiring, example RBAC);
# 4. a self-test proving that broken variants of the manifests are rejected.
# See scripts/validate-manifests.py for the list of checks.
#
# Needs python3 and kubectl (or kustomize). kubernetes-validate is installed
# into a cached virtualenv if the current python3 lacks the pinned version
# (scripts/kv-python.sh). manifests/ itself is generated from the Helm chart;
# .ci/helm.sh checks that it is up to date.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  echo "manifests: need kubectl (>= 1.21, has kustomize built in) or kustomize on PATH" >&2
  exit 1
fi

PY="$(scripts/kv-python.sh)"

echo "manifests: kubernetes-validate $("$PY" -c "import kubernetes_validate.version as v; print(v.__version__)"), $(kubectl version --client 2>/dev/null | grep -i kustomize || echo kustomize)"
"$PY" scripts/validate-manifests.py
"$PY" scripts/validate-manifests.py --self-test >/dev/null || {
  # Re-run verbosely so the log shows which broken variant slipped through.
  "$PY" scripts/validate-manifests.py --self-test
  exit 1
}
echo "manifests: self-test passed (broken variants are rejected)"
