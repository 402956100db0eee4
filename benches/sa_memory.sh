#!/usr/bin/env bash
# Memory and start-up time of the real `azwi-webhook serve` as a function of the number of service
# accounts in the cluster (BENCHMARKS.md, "Service accounts"): what each service account without an
# `azure.workload.identity/` annotation costs in resident memory, and how long the webhook takes from
# start to ready.
#
# For each count in COUNTS, a fake API server (the tests' one, `loadtest_server apiserver`, in its own
# process so it is not in the RSS) holds that many service accounts with 20-character names spread
# over NAMESPACES namespaces, ANNOTATED of them with a client-id annotation. Then, RUNS times and
# alternating between the webhooks in WEBHOOKS, the real release binary runs `serve` against it as
# `manifests/` deploys it (`--log-level=info`, the same flags and environment) except for the
# certificates, which are given (`--disable-cert-rotation`) rather than self-managed. Per run:
#   - ready:  seconds from exec to the first 200 from /readyz (which waits for the first full list);
#   - rss_ready, rss_idle: VmRSS at ready and IDLE seconds later; peak: VmHWM at that point.
# Reported per webhook and count: the medians; and between the first two counts the cost of each
# extra service account, median over runs of (rss_idle(second) - rss_idle(first)) / (difference).
# The webhook's "service-account cache synced" log line is checked to name the expected count.
#
# Usage, from the repository root:  benches/sa_memory.sh
# Knobs (environment): COUNTS="10000 100000", NAMESPACES=1000, ANNOTATED=10, RUNS=3, IDLE=5,
# WEBHOOKS="current=<binary>" (space-separated NAME=BINARY pairs, e.g. a build of main beside this
# one; default: the release build in the target dir, built if missing), SERVER_BIN=<a prebuilt
# loadtest_server example, release; built if missing>, OUT=<dir for logs and results>, CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
COUNTS=${COUNTS:-"10000 100000"}
NAMESPACES=${NAMESPACES:-1000}
ANNOTATED=${ANNOTATED:-10}
RUNS=${RUNS:-3}
IDLE=${IDLE:-5}
READY_TIMEOUT=${READY_TIMEOUT:-300}
OUT=${OUT:-$(mktemp -d -t azwi-sa-memory.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"

if [ -z "${WEBHOOKS:-}" ] || [ -z "${SERVER_BIN:-}" ]; then
    cargo build --release --bin azwi-webhook --example loadtest_server
fi
WEBHOOKS=${WEBHOOKS:-"current=$TARGET/release/azwi-webhook"}
SERVER_BIN=${SERVER_BIN:-$TARGET/release/examples/loadtest_server}
for pair in $WEBHOOKS; do
    [ -x "${pair#*=}" ] || { echo "not an executable: ${pair#*=}" >&2; exit 1; }
done

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

status_kib() { # pid field
    awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"
}

# Polls `test` every 20 ms until it succeeds; fails after `seconds`.
wait_until() { # seconds test...
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

"$SERVER_BIN" certs "$OUT/certs"

RESULTS="$OUT/results.tsv"
printf 'webhook\tcount\trun\tready_s\trss_ready_kib\trss_idle_kib\tpeak_kib\n' >"$RESULTS"

# The environment the manifests' ConfigMap gives the webhook (an example tenant).
export AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555
export AZURE_ENVIRONMENT=AzurePublicCloud
export POD_NAMESPACE=azure-workload-identity-system

for count in $COUNTS; do
    api="$OUT/apiserver-$count"
    mkdir -p "$api"
    "$SERVER_BIN" apiserver --service-accounts "$count" --namespaces "$NAMESPACES" \
        --annotated "$ANNOTATED" --out "$api" 2>"$api/log" &
    api_pid=$!
    pids+=("$api_pid")
    wait_until 600 test -s "$api/apiserver.url" || { echo "fake API server did not start" >&2; exit 1; }

    for run in $(seq 1 "$RUNS"); do
        for pair in $WEBHOOKS; do
            name=${pair%%=*}
            bin=${pair#*=}
            log="$OUT/$name-$count-$run.log"
            health=$(free_port)
            start=$(date +%s.%N)
            "$bin" serve --log-level=info --webhook-addr="127.0.0.1:$(free_port)" \
                --webhook-cert-dir="$OUT/certs" --disable-cert-rotation --tls-min-version=1.3 \
                --health-addr="127.0.0.1:$health" --metrics-addr="127.0.0.1:$(free_port)" \
                --metrics-backend=prometheus --shutdown-delay=0s --max-in-flight-reviews=1000 \
                --rbac-check=deny --kubeconfig="$api/kubeconfig" 2>"$log" &
            pid=$!
            pids+=("$pid")
            if ! wait_until "$READY_TIMEOUT" curl -sf -o /dev/null "http://127.0.0.1:$health/readyz"; then
                echo "$name did not become ready with $count service accounts; log: $log" >&2
                exit 1
            fi
            ready=$(awk -v start="$start" -v now="$(date +%s.%N)" 'BEGIN { print now - start }')
            rss_ready=$(status_kib "$pid" VmRSS)
            sleep "$IDLE"
            rss_idle=$(status_kib "$pid" VmRSS)
            peak=$(status_kib "$pid" VmHWM)
            kill "$pid"
            wait "$pid" 2>/dev/null || true
            synced=$(grep -o '"service_accounts":[0-9]*' "$log" | head -1 | cut -d: -f2)
            if [ "${synced:-}" != "$count" ]; then
                echo "$name synced ${synced:-no} service accounts, expected $count; log: $log" >&2
                exit 1
            fi
            printf '%s\t%s\t%s\t%.3f\t%s\t%s\t%s\n' "$name" "$count" "$run" "$ready" "$rss_ready" \
                "$rss_idle" "$peak" | tee -a "$RESULTS"
        done
    done
    kill "$api_pid"
    wait "$api_pid" 2>/dev/null || true
done

python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = defaultdict(list)
for row in rows:
    by[(row["webhook"], int(row["count"]))].append(row)
webhooks = list(dict.fromkeys(row["webhook"] for row in rows))
counts = sorted({int(row["count"]) for row in rows})
med = lambda rs, key: statistics.median(float(r[key]) for r in rs)
mib = lambda kib: f"{kib / 1024:.1f} MiB"

print(f"\nmedians of {len(next(iter(by.values())))} runs")
print(f"{'webhook':<12}{'service accounts':>18}{'ready':>10}{'RSS ready':>12}{'RSS idle':>12}{'peak':>12}")
for name in webhooks:
    for count in counts:
        rs = by[(name, count)]
        print(f"{name:<12}{count:>18}{med(rs, 'ready_s'):>9.2f}s{mib(med(rs, 'rss_ready_kib')):>12}"
              f"{mib(med(rs, 'rss_idle_kib')):>12}{mib(med(rs, 'peak_kib')):>12}")
if len(counts) >= 2:
    low, high = counts[0], counts[1]
    for name in webhooks:
        idle = lambda count: {r["run"]: float(r["rss_idle_kib"]) for r in by[(name, count)]}
        lows, highs = idle(low), idle(high)
        per_sa = [(highs[run] - lows[run]) * 1024 / (high - low) for run in lows if run in highs]
        print(f"{name}: {statistics.median(per_sa):.0f} bytes of RSS per extra service account "
              f"({low} -> {high}; runs: {', '.join(f'{b:.0f}' for b in per_sa)})")
EOF
echo "results: $RESULTS"
