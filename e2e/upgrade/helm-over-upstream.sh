#!/usr/bin/env bash
# Upgrade in place from the upstream webhook's Helm chart, as docs/migrating-from-upstream.md tells
# an admin to: install a release of upstream's chart (upstream-chart/: its object names, labels and
# selectors, with upstream's image and command), then `helm upgrade` that release to our chart with
# the same values file. Helm must accept the upgrade (no immutable field: Deployment selector,
# binding roleRefs, Secret type; no object another release owns), the Deployment, the Service and
# the MutatingWebhookConfiguration must be the same objects afterwards, updated rather than
# replaced, with one webhook entry and our image. Then `helm rollback` to revision 1 (upstream's
# chart) must succeed too. Run once per values file: the chart's defaults (an upstream user who set
# only the tenant) and upstream-full (every upstream key set, nameOverride among them, which is in
# the selector). No kubelet is needed: the check is what the API server stores.
#
#   AZWI_E2E_WEBHOOK_IDENTITY=0 e2e/with-cluster.sh e2e/upgrade/helm-over-upstream.sh
#
# Needs a cluster-admin KUBECONFIG on a cluster without the webhook (the throwaway control plane of
# e2e/cluster.sh started with AZWI_E2E_WEBHOOK_IDENTITY=0), kubectl on PATH or in AZWI_E2E_BIN_DIR,
# and helm v4 in AZWI_E2E_HELM (else the one e2e/helm/build.sh builds). Each release is uninstalled
# after its check; the namespaces stay (the control plane is thrown away after).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
script=helm-over-upstream
# shellcheck source=e2e/upgrade/lib.sh
. "$here/lib.sh"
helm="${AZWI_E2E_HELM:-$("$repo/e2e/helm/build.sh")/helm}"
[[ -x "$helm" ]] || fail "helm not found at $helm"

# The release name upstream's install instructions use.
release=workload-identity-webhook
upstream_image=mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.6.0
run="$(date +%s%N | sha256sum | cut -c1-6)"

for case in defaults upstream-full; do
  values="$repo/e2e/helm/cases/$case.yaml"
  # Without kube-controller-manager a deleted namespace stays Terminating: never reuse a name.
  ns="azwi-upgrade-$case-$run"
  require_no_webhook

  echo "--- helm-over-upstream ($case): helm install of upstream's chart"
  "$helm" install "$release" "$here/upstream-chart" -n "$ns" --create-namespace -f "$values" \
    --set image.repository="${upstream_image%:*}" --set image.release="${upstream_image##*:}" >/dev/null \
    || fail "$case: the upstream chart did not install"
  [[ "$(deployment_field "$ns" '.spec.template.spec.containers[0].image')" == "$upstream_image" ]] \
    || fail "$case: upstream's release does not run upstream's image"
  record_upstream "$ns"

  echo "--- helm-over-upstream ($case): helm upgrade to charts/azwi-webhook with the same values"
  expected_image="$("$helm" template "$release" "$repo/charts/azwi-webhook" -n "$ns" -f "$values" \
    --show-only templates/deployment.yaml | sed -n 's/^ *image: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | head -n 1)"
  [[ -n "$expected_image" && "$expected_image" != "$upstream_image" ]] \
    || fail "$case: cannot tell our image from the rendered chart ($expected_image)"
  out="$("$helm" upgrade "$release" "$repo/charts/azwi-webhook" -n "$ns" -f "$values" 2>&1)" \
    || fail "$case: helm upgrade refused: $out"
  check_updated_in_place "$ns" "$expected_image"

  echo "--- helm-over-upstream ($case): helm rollback to revision 1 (upstream's chart)"
  out="$("$helm" rollback "$release" 1 -n "$ns" 2>&1)" || fail "$case: helm rollback refused: $out"
  [[ "$(uid -n "$ns" deployment "$deployment")" == "$before_deployment" ]] || fail "$case: the rollback replaced the Deployment"
  [[ "$(deployment_field "$ns" '.spec.template.spec.containers[0].image')" == "$upstream_image" ]] \
    || fail "$case: after the rollback the Deployment does not run upstream's image"
  webhooks="$("$kubectl" get mutatingwebhookconfiguration "$mwc" -o jsonpath='{.webhooks[*].name}')"
  [[ "$webhooks" == "mutation.azure-workload-identity.io" ]] || fail "$case: webhook entries after the rollback: $webhooks"
  echo "rolled back to upstream's chart: same Deployment, upstream's image, one webhook entry"

  "$helm" uninstall "$release" -n "$ns" >/dev/null || fail "$case: helm uninstall failed"
  echo "helm-over-upstream ($case): ok"
done
echo "helm-over-upstream: ok"
