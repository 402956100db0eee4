#!/usr/bin/env bash
# Runs a command against a fresh local control plane, and stops the control plane however the
# command ends:
#
#   e2e/with-cluster.sh CMD [ARGS...]
#
# Builds the control plane and helm (both cached, e2e/controlplane/build.sh, e2e/helm/build.sh)
# and the release webhook, starts etcd and kube-apiserver on loopback (e2e/cluster.sh), exports the
# variables of its env file plus AZWI_E2E_WEBHOOK_BIN, AZWI_E2E_HELM (helm v4) and a PATH whose
# kubectl is the control plane's, then runs CMD. The state (logs, kubeconfigs) stays in
# $AZWI_E2E_STATE_DIR (default: a new temporary directory).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

state="${AZWI_E2E_STATE_DIR:-$(mktemp -d -t azwi-e2e.XXXXXX)}"
trap 'e2e/cluster.sh down "$state"; echo "e2e state and logs: $state" >&2' EXIT

start=$(date +%s)
e2e/controlplane/build.sh > /dev/null
helm_bin="$(e2e/helm/build.sh)"
echo "--- e2e: control plane and helm binaries ready in $(( $(date +%s) - start )) s" >&2

# The webhook runs as the released binary, as a cluster would run it.
cargo build --release --locked --bin azwi-webhook

start=$(date +%s)
AZWI_E2E_OWNER_PID=$$ e2e/cluster.sh up "$state"
echo "--- e2e: control plane up in $(( $(date +%s) - start )) s" >&2
set -a
# shellcheck source=/dev/null
. "$state/env"
set +a
export AZWI_E2E_STATE_DIR="$state"
export AZWI_E2E_WEBHOOK_BIN="$repo/target/release/azwi-webhook"
export AZWI_E2E_HELM="$helm_bin/helm"
export PATH="$AZWI_E2E_BIN_DIR:$PATH"

"$@"
