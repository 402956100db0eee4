#!/usr/bin/env bash
# Upgrade in place from the upstream webhook's static install, as docs/migrating-from-upstream.md
# tells an admin to: apply upstream's object set (upstream-static.yaml, its names and selectors),
# then `kubectl apply -k manifests/base` over it. The API server must accept every change (no
# immutable field: Deployment selector, binding roleRefs, Secret type), and the Deployment, the
# Service and the MutatingWebhookConfiguration must be the same objects afterwards, updated rather
# than replaced, with one webhook entry. Then the rollback (re-applying upstream's set) must be
# accepted too. No kubelet is needed: the check is what the API server stores.
#
#   AZWI_E2E_WEBHOOK_IDENTITY=0 e2e/with-cluster.sh e2e/upgrade/apply-over-upstream.sh
#
# Needs a cluster-admin KUBECONFIG on a cluster without the webhook (the throwaway control plane of
# e2e/cluster.sh started with AZWI_E2E_WEBHOOK_IDENTITY=0), and kubectl on PATH or in
# AZWI_E2E_BIN_DIR. It leaves the objects in place: the control plane is thrown away after.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
: "${KUBECONFIG:?KUBECONFIG must point at a running cluster}"
kubectl="$(command -v kubectl || true)"
[[ -n "${AZWI_E2E_BIN_DIR:-}" ]] && kubectl="$AZWI_E2E_BIN_DIR/kubectl"
[[ -x "$kubectl" ]] || { echo "apply-over-upstream: kubectl not found" >&2; exit 1; }

ns=azure-workload-identity-system
deployment=azure-wi-webhook-controller-manager
service=azure-wi-webhook-webhook-service
mwc=azure-wi-webhook-mutating-webhook-configuration
fail() { echo "apply-over-upstream: FAIL: $*" >&2; exit 1; }
uid() { "$kubectl" get "$@" -o jsonpath='{.metadata.uid}'; }

if "$kubectl" get mutatingwebhookconfiguration "$mwc" >/dev/null 2>&1; then
  fail "the cluster already has $mwc: run this on a cluster without the webhook"
fi

echo "--- apply-over-upstream: upstream's static install"
"$kubectl" apply -f "$here/upstream-static.yaml"
before_deployment="$(uid -n "$ns" deployment "$deployment")"
before_service="$(uid -n "$ns" service "$service")"
before_mwc="$(uid mutatingwebhookconfiguration "$mwc")"
before_generation="$("$kubectl" -n "$ns" get deployment "$deployment" -o jsonpath='{.metadata.generation}')"

echo "--- apply-over-upstream: kubectl apply -k manifests/base over it"
"$kubectl" apply -k "$repo/manifests/base" || fail "the API server refused our manifests over upstream's"

[[ "$(uid -n "$ns" deployment "$deployment")" == "$before_deployment" ]] || fail "the Deployment was replaced"
[[ "$(uid -n "$ns" service "$service")" == "$before_service" ]] || fail "the Service was replaced"
[[ "$(uid mutatingwebhookconfiguration "$mwc")" == "$before_mwc" ]] || fail "the webhook configuration was replaced"
generation="$("$kubectl" -n "$ns" get deployment "$deployment" -o jsonpath='{.metadata.generation}')"
(( generation > before_generation )) || fail "the Deployment's template did not change (generation $generation)"
image="$("$kubectl" -n "$ns" get deployment "$deployment" -o jsonpath='{.spec.template.spec.containers[0].image}')"
expected_image="$(python3 - "$repo" <<'PY'
import re, sys
text = open(sys.argv[1] + "/manifests/base/deployment.yaml").read()
print(re.search(r"image:\s*(\S+)", text).group(1).strip("\"'"))
PY
)"
[[ "$image" == "$expected_image" ]] || fail "the Deployment runs $image, not $expected_image"
command="$("$kubectl" -n "$ns" get deployment "$deployment" -o jsonpath='{.spec.template.spec.containers[0].command}')"
[[ -z "$command" ]] || fail "upstream's command $command survived the apply"
webhooks="$("$kubectl" get mutatingwebhookconfiguration "$mwc" -o jsonpath='{.webhooks[*].name}')"
[[ "$webhooks" == "mutation.azure-workload-identity.io" ]] || fail "webhook entries after the apply: $webhooks"
echo "Deployment, Service and webhook configuration updated in place (generation $before_generation -> $generation, image $image)"

echo "--- apply-over-upstream: rollback, upstream's set applied again"
"$kubectl" apply -f "$here/upstream-static.yaml" || fail "the rollback was refused"
[[ "$(uid -n "$ns" deployment "$deployment")" == "$before_deployment" ]] || fail "the rollback replaced the Deployment"
echo "apply-over-upstream: ok"
