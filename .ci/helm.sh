#!/usr/bin/env bash
# Check the Helm chart charts/azwi-webhook offline (called by .ci/run).
#
#   .ci/helm.sh            # from the repository root (or anywhere)
#
# 1. helm v4 and v3 are built from the Go modules pinned in e2e/helm/v4 and e2e/helm/v3 (cached
#    under ~/.cache/azwi-webhook/helm, keyed by go.mod, go.sum and the Go version);
# 2. scripts/validate-chart.py: `helm lint --strict` with both; every values file in
#    e2e/helm/cases/ rendered with both (same objects), validated in strict mode against the
#    Kubernetes schemas, put through the property checks of scripts/validate-manifests.py, and
#    checked value by value; every file in e2e/helm/bad/ refused with its message; values.yaml,
#    values.schema.json and the README's table of values in agreement; with the webhook binary
#    built (target/release/azwi-webhook, or AZWI_WEBHOOK_BINARY), also that the binary accepts
#    each rendered set of arguments and environment; then its self-test;
# 3. manifests/ is what the chart renders (scripts/render-manifests.py --check).
#
# Needs go and python3 (kubernetes-validate is installed by scripts/kv-python.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="$(e2e/helm/build.sh)"
PY="$(scripts/kv-python.sh)"
echo "helm: $("$bin/helm" version --short) and $("$bin/helm3" version --short)"

check=(scripts/validate-chart.py --helm "$bin/helm" --helm3 "$bin/helm3")
webhook="${AZWI_WEBHOOK_BINARY:-target/release/azwi-webhook}"
if [[ -x "$webhook" ]]; then
  check+=(--binary "$webhook")
else
  echo "helm: $webhook not built: the rendered configurations are not run through the binary"
fi

"$PY" "${check[@]}"
"$PY" "${check[@]}" --self-test >/dev/null || {
  # Re-run verbosely so the log shows which broken variant slipped through.
  "$PY" "${check[@]}" --self-test
  exit 1
}
echo "helm: self-test passed (broken renders are caught)"
"$PY" scripts/render-manifests.py --helm "$bin/helm" --check
