# Shared by the upgrade checks (apply-over-upstream.sh, helm-over-upstream.sh): source it after
# setting `script` to the caller's name. Needs a KUBECONFIG and kubectl on PATH or in
# AZWI_E2E_BIN_DIR. The object names are upstream's, which ours keep.
: "${KUBECONFIG:?KUBECONFIG must point at a running cluster}"
kubectl="$(command -v kubectl || true)"
[[ -n "${AZWI_E2E_BIN_DIR:-}" ]] && kubectl="$AZWI_E2E_BIN_DIR/kubectl"
[[ -x "$kubectl" ]] || { echo "$script: kubectl not found" >&2; exit 1; }

deployment=azure-wi-webhook-controller-manager
service=azure-wi-webhook-webhook-service
mwc=azure-wi-webhook-mutating-webhook-configuration

fail() { echo "$script: FAIL: $*" >&2; exit 1; }
uid() { "$kubectl" get "$@" -o jsonpath='{.metadata.uid}'; }
deployment_field() { "$kubectl" -n "$1" get deployment "$deployment" -o jsonpath="{$2}"; }

require_no_webhook() {
  if "$kubectl" get mutatingwebhookconfiguration "$mwc" >/dev/null 2>&1; then
    fail "the cluster already has $mwc: run this on a cluster without the webhook"
  fi
}

# Records the UIDs and generation of upstream's objects in namespace $1.
record_upstream() {
  local ns="$1"
  before_deployment="$(uid -n "$ns" deployment "$deployment")"
  before_service="$(uid -n "$ns" service "$service")"
  before_mwc="$(uid mutatingwebhookconfiguration "$mwc")"
  before_generation="$(deployment_field "$ns" .metadata.generation)"
}

# After ours went over upstream's in namespace $1: the same Deployment, Service and webhook
# configuration (updated, not replaced), a changed pod template running image $2 without
# upstream's command, and one webhook entry.
check_updated_in_place() {
  local ns="$1" expected_image="$2" generation image command webhooks
  [[ "$(uid -n "$ns" deployment "$deployment")" == "$before_deployment" ]] || fail "the Deployment was replaced"
  [[ "$(uid -n "$ns" service "$service")" == "$before_service" ]] || fail "the Service was replaced"
  [[ "$(uid mutatingwebhookconfiguration "$mwc")" == "$before_mwc" ]] || fail "the webhook configuration was replaced"
  generation="$(deployment_field "$ns" .metadata.generation)"
  (( generation > before_generation )) || fail "the Deployment's template did not change (generation $generation)"
  image="$(deployment_field "$ns" '.spec.template.spec.containers[0].image')"
  [[ "$image" == "$expected_image" ]] || fail "the Deployment runs $image, not $expected_image"
  command="$(deployment_field "$ns" '.spec.template.spec.containers[0].command')"
  [[ -z "$command" ]] || fail "upstream's command $command survived"
  webhooks="$("$kubectl" get mutatingwebhookconfiguration "$mwc" -o jsonpath='{.webhooks[*].name}')"
  [[ "$webhooks" == "mutation.azure-workload-identity.io" ]] || fail "webhook entries: $webhooks"
  echo "Deployment, Service and webhook configuration updated in place (generation $before_generation -> $generation, image $image)"
}
