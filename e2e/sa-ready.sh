#!/usr/bin/env bash
# Start-up time and memory of the real webhook against the real kube-apiserver, as a function of the
# number of service accounts (BENCHMARKS.md, "Service accounts"): the same measure as
# benches/sa_memory.sh, with kube-apiserver and etcd instead of the fake API server.
#
#   e2e/with-cluster.sh e2e/sa-ready.sh
#
# For each count in COUNTS (ascending), service accounts with 20-character names are added until the
# cluster holds that many in NAMESPACES namespaces (none annotated), then RUNS times the release
# binary runs `serve` with the webhook's own kubeconfig (the RBAC of manifests/base/rbac.yaml),
# `--log-level=info`, given certificates. Per run: seconds from exec to the first 200 from /readyz
# (which waits for the first full list), VmRSS at ready and IDLE seconds later. Printed: medians per
# count, and the RSS per extra service account between the first two counts.
# Knobs: COUNTS="10000 100000", NAMESPACES=1000, RUNS=3, IDLE=5, PARALLEL=4 (kubectl creates).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${AZWI_E2E_WEBHOOK_KUBECONFIG:?run under e2e/with-cluster.sh}"
COUNTS=${COUNTS:-"10000 100000"}
NAMESPACES=${NAMESPACES:-1000}
RUNS=${RUNS:-3}
IDLE=${IDLE:-5}
PARALLEL=${PARALLEL:-4}
bin=${AZWI_E2E_WEBHOOK_BIN:?}
out=$AZWI_E2E_STATE_DIR/sa-ready
mkdir -p "$out/lists"

"$bin" certs --out "$out/certs" --dns-name localhost --force >/dev/null

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Namespaces and service accounts as List files of 2,000 objects, created PARALLEL at a time.
python3 - "$out/lists" "$NAMESPACES" "$COUNTS" <<'EOF'
import json, sys
out, namespaces, counts = sys.argv[1], int(sys.argv[2]), sorted(int(c) for c in sys.argv[3].split())
def write(name, items):
    for start in range(0, len(items), 2000):
        with open(f"{out}/{name}-{start:07d}.json", "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items[start:start + 2000]}, f)
write("0-namespaces", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"team-{n:04d}"}}
                       for n in range(namespaces)])
previous = 0
for count in counts:
    items = [{"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": f"svc-account-{i:08d}", "namespace": f"team-{i % namespaces:04d}"}}
             for i in range(previous, count)]
    write(f"{count:09d}-accounts", items)
    previous = count
EOF
create() { # glob
    local started=$SECONDS
    ls "$out"/lists/$1 | xargs -P "$PARALLEL" -n 1 kubectl create -o name -f >/dev/null
    echo "created $1 in $((SECONDS - started)) s" >&2
}
create '0-namespaces-*'

results="$out/results.tsv"
: >"$results"
export AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555 AZURE_ENVIRONMENT=AzurePublicCloud
export POD_NAMESPACE=azure-workload-identity-system
for count in $COUNTS; do
    create "$(printf '%09d' "$count")-accounts-*"
    total=$(kubectl get serviceaccounts -A --no-headers -o name | wc -l)
    for run in $(seq 1 "$RUNS"); do
        health=$(free_port)
        log="$out/serve-$count-$run.log"
        start=$(date +%s.%N)
        "$bin" serve --log-level=info --webhook-addr="127.0.0.1:$(free_port)" \
            --webhook-cert-dir="$out/certs" --disable-cert-rotation \
            --health-addr="127.0.0.1:$health" --metrics-addr="127.0.0.1:$(free_port)" \
            --shutdown-delay=0s --kubeconfig="$AZWI_E2E_WEBHOOK_KUBECONFIG" 2>"$log" &
        pid=$!
        deadline=$((SECONDS + 600))
        until curl -sf -o /dev/null "http://127.0.0.1:$health/readyz"; do
            [ "$SECONDS" -lt "$deadline" ] || { echo "not ready; log: $log" >&2; kill "$pid"; exit 1; }
            sleep 0.02
        done
        ready=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.2f", n - s }')
        rss_ready=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        sleep "$IDLE"
        rss_idle=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$count" "$total" "$run" "$ready" "$rss_ready" "$rss_idle" |
            tee -a "$results" >&2
    done
done

python3 - "$results" <<'EOF'
import statistics, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for count, total, run, ready, rss_ready, rss_idle in rows:
    by[int(count)].append((int(total), run, float(ready), int(rss_ready), int(rss_idle)))
print("| service accounts (all in the cluster) | ready (median) | RSS at ready | RSS idle |")
print("|---:|---:|---:|---:|")
for count, runs in sorted(by.items()):
    print(f"| {count} ({runs[0][0]}) | {statistics.median(r[2] for r in runs):.2f} s "
          f"| {statistics.median(r[3] for r in runs) / 1024:.1f} MiB | {statistics.median(r[4] for r in runs) / 1024:.1f} MiB |")
counts = sorted(by)
if len(counts) >= 2:
    low, high = by[counts[0]], by[counts[1]]
    idle = lambda runs: {r[1]: r[4] for r in runs}
    lo, hi = idle(low), idle(high)
    per = [(hi[k] - lo[k]) * 1024 / (high[0][0] - low[0][0]) for k in lo if k in hi]
    print(f"\nRSS per extra service account: median {statistics.median(per):.0f} bytes "
          f"(runs: {', '.join(f'{p:.0f}' for p in per)})")
EOF
