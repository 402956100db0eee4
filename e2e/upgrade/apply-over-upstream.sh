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
script=apply-over-upstream
# shellcheck source=e2e/upgrade/lib.sh
. "$here/lib.sh"
ns=azure-workload-identity-system
require_no_webhook

echo "--- apply-over-upstream: upstream's static install"
"$kubectl" apply -f "$here/upstream-static.yaml"
record_upstream "$ns"

echo "--- apply-over-upstream: kubectl apply -k manifests/base over it"
"$kubectl" apply -k "$repo/manifests/base" || fail "the API server refused our manifests over upstream's"

expected_image="$(python3 - "$repo" <<'PY'
import re, sys
text = open(sys.argv[1] + "/manifests/base/deployment.yaml").read()
print(re.search(r"image:\s*(\S+)", text).group(1).strip("\"'"))
PY
)"
check_updated_in_place "$ns" "$expected_image"

echo "--- apply-over-upstream: rollback, upstream's set applied again"
"$kubectl" apply -f "$here/upstream-static.yaml" || fail "the rollback was refused"
[[ "$(uid -n "$ns" deployment "$deployment")" == "$before_deployment" ]] || fail "the rollback replaced the Deployment"
echo "apply-over-upstream: ok"
