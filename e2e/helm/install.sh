#!/usr/bin/env bash
# Installs the chart for real against a running kube-apiserver, once per values file in cases/ and
# once per helm major version: every object must be accepted by the API server's own validation and
# admission, and `helm uninstall` must leave none behind. No kubelet is needed (pods are never
# scheduled). Cases whose objects need CRDs (cert-manager, Prometheus Operator) are skipped unless
# the cluster serves those APIs.
#
#   e2e/cluster.sh up DIR && e2e/helm/install.sh DIR     # the control plane of e2e/cluster.sh
#   KUBECONFIG=... e2e/helm/install.sh                     # any cluster without the webhook
#
# Needs a cluster-admin KUBECONFIG and kubectl on PATH or in AZWI_E2E_BIN_DIR. The webhook's
# cluster-scoped objects must not exist yet (Helm will not adopt objects it did not create): with
# e2e/cluster.sh, delete the RBAC it applies first. Namespaces it creates are deleted again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [[ $# -ge 1 ]]; then
  set -a; source "$1/env"; set +a
fi
: "${KUBECONFIG:?KUBECONFIG must point at a running cluster (or pass the DIR of e2e/cluster.sh up DIR)}"
export KUBECONFIG

kubectl="$(command -v kubectl || true)"
[[ -n "${AZWI_E2E_BIN_DIR:-}" ]] && kubectl="$AZWI_E2E_BIN_DIR/kubectl"
[[ -x "$kubectl" ]] || { echo "install.sh: kubectl not found (PATH or AZWI_E2E_BIN_DIR)" >&2; exit 1; }
bin="$("$here/build.sh")"

# Objects the chart can create, by kind; checked before and after each install.
namespaced="deployment,service,secret,configmap,poddisruptionbudget,serviceaccount,role,rolebinding"
cluster="clusterrole,clusterrolebinding,mutatingwebhookconfiguration"

ours() {
  local ns="$1"
  { "$kubectl" -n "$ns" get "$namespaced" -o name 2>/dev/null | grep -E '/azure-wi-webhook' || true
    "$kubectl" get "$cluster" -o name | grep -E '/azure-wi-webhook' || true; } | sort
}

served() { "$kubectl" api-resources --api-group="$1" -o name 2>/dev/null | grep -q .; }

failures=0
run="$(date +%s%N | sha256sum | cut -c1-6)"
for helm in helm helm3; do
  for values in "$here"/cases/*.yaml; do
    name="$(basename "$values" .yaml)"
    if grep -qE '^ *mode: cert-manager' "$values" && ! served cert-manager.io; then
      echo "  skip  $helm $name (cert-manager.io not served)"; continue
    fi
    if grep -qE '^ *enabled: true' "$values" && ! served monitoring.coreos.com; then
      echo "  skip  $helm $name (monitoring.coreos.com not served)"; continue
    fi
    # Without kube-controller-manager a deleted namespace stays Terminating: never reuse a name.
    ns="azwi-$helm-$name-$run"
    "$kubectl" create namespace "$ns" >/dev/null
    if ! leftovers="$(ours "$ns")" || [[ -n "$leftovers" ]]; then
      echo "  FAIL  $helm $name: the webhook's objects exist before the install (Helm cannot adopt them):" \
        $leftovers; failures=$((failures + 1))
      "$kubectl" delete namespace "$ns" --wait=false >/dev/null; continue
    fi
    want="$("$bin/$helm" template wi "$repo/charts/azwi-webhook" -n "$ns" -f "$values" \
      | "$kubectl" create --dry-run=client -f - -o name | sed 's#\.[a-z0-9.]*/#/#' | sort)"
    if ! out="$("$bin/$helm" install wi "$repo/charts/azwi-webhook" -n "$ns" -f "$values" 2>&1)"; then
      echo "  FAIL  $helm $name: install refused: $out"; failures=$((failures + 1))
    else
      got="$(ours "$ns" | sed 's#\.[a-z0-9.]*/#/#')"
      if [[ "$got" != "$(grep -E '/azure-wi-webhook' <<<"$want")" ]]; then
        echo "  FAIL  $helm $name: the cluster holds"; echo "$got"; echo "  rendered:"; echo "$want"
        failures=$((failures + 1))
      fi
      "$bin/$helm" uninstall wi -n "$ns" >/dev/null
      left="$(ours "$ns")"
      if [[ -n "$left" ]]; then
        echo "  FAIL  $helm $name: left behind by helm uninstall: $left"; failures=$((failures + 1))
      else
        echo "  ok    $helm $name: $(wc -l <<<"$got") objects accepted, all removed by uninstall"
      fi
    fi
    "$kubectl" delete namespace "$ns" --wait=false >/dev/null
  done
done
[[ $failures -eq 0 ]] || { echo "helm install: $failures failure(s)" >&2; exit 1; }
echo "helm install: every case installed and uninstalled cleanly with helm v4 and v3"
