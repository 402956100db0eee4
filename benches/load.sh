#!/usr/bin/env bash
# Load test of the real TLS HTTP/2 server against a no-op server on the same stack (see BENCHMARKS.md).
#
# Builds the `loadtest_server` example (release), generates serving certificates, starts
#   - a fake API server holding $SAS service accounts (its own process, so it is not in the RSS),
#   - live:  the real `app::serve`, reading each pod's service account through the real kube client,
#   - cache: CACHE-EQUIVALENT, the same server and Admitter with the $SAS service accounts in memory
#            behind the `ServiceAccounts` trait (what a warm metadata cache gives), not `app::serve`,
#   - noop:  the same server stack answering every POST with a fixed body the size of the real answer,
# then runs h2load (TLS, HTTP/2, the typical review as POST body) at each concurrency level against
# each server in turn, a half-of-maximum-rate run for the latency target, and reads peak RSS from /proc.
#
#   - base:  (only when asked for) `live` from another build, BASE_BIN, e.g. of the previous commit, to
#            measure a change side by side in one run,
# Usage, from the repository root:  benches/load.sh
# Knobs (environment): SERVERS="live cache noop", LEVELS="1x1 2x4 4x8 8x16" (clients x streams per
# client), REQUESTS=50000 per run, SAS=10000, OUT=<dir for logs and results>, CARGO_TARGET_DIR,
# BIN=<a prebuilt loadtest_server, skips the build>, BASE_BIN=<the loadtest_server for `base`>.
set -euo pipefail

cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-"live cache noop"}
LEVELS=${LEVELS:-"1x1 2x4 4x8 8x16"}
REQUESTS=${REQUESTS:-50000}
WARMUP=${WARMUP:-2000}
SAS=${SAS:-10000}
OUT=${OUT:-$(mktemp -d -t azwi-load.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"

if ! command -v h2load >/dev/null; then
    echo "h2load missing: installing nghttp2-client" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get install -y nghttp2-client >/dev/null ||
        { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y nghttp2-client >/dev/null; }
fi

if [ -z "${BIN:-}" ]; then
    cargo build --release --example loadtest_server
    BIN="$TARGET/release/examples/loadtest_server"
fi
case " $SERVERS " in *" base "*) [ -x "${BASE_BIN:-}" ] || { echo "base needs BASE_BIN" >&2; exit 1; } ;; esac

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN" certs "$OUT/certs"
"$BIN" write-review "$OUT/review.json"

declare -A PORT=([live]=18443 [cache]=18453 [noop]=18463 [base]=18473)
declare -A HEALTH=([live]=18444 [cache]=18454 [noop]=18464 [base]=18474)
declare -A METRICS=([live]=18445 [cache]=18455 [noop]=18465 [base]=18475)
declare -A PID

wait_for() { # url
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "never ready: $1" >&2
    return 1
}

case " $SERVERS " in
*" live "* | *" base "*)
    rm -f "$OUT/apiserver.url"
    "$BIN" apiserver --service-accounts "$SAS" --out "$OUT" 2>"$OUT/apiserver.log" &
    pids+=($!)
    for _ in $(seq 1 600); do [ -s "$OUT/apiserver.url" ] && break; sleep 0.1; done
    ;;
esac

for server in $SERVERS; do
    common=(--cert-dir "$OUT/certs" --addr "127.0.0.1:${PORT[$server]}"
        --health-addr "127.0.0.1:${HEALTH[$server]}" --metrics-addr "127.0.0.1:${METRICS[$server]}")
    case $server in
    live) "$BIN" webhook "${common[@]}" --apiserver "$OUT" 2>"$OUT/live.log" & ;;
    base) "$BASE_BIN" webhook "${common[@]}" --apiserver "$OUT" 2>"$OUT/base.log" & ;;
    cache) "$BIN" webhook-in-memory "${common[@]}" --service-accounts "$SAS" 2>"$OUT/cache.log" & ;;
    noop) "$BIN" noop "${common[@]}" 2>"$OUT/noop.log" & ;;
    esac
    PID[$server]=$!
    pids+=($!)
    wait_for "http://127.0.0.1:${HEALTH[$server]}/readyz"
done

url() { echo "https://127.0.0.1:${PORT[$1]}/mutate-v1-pod?timeout=10s"; }

# A 200 can still be a denial: every server must answer the review with the patch before it is timed.
declare -A IDLE_RSS
for server in $SERVERS; do
    curl -sk --http2 -H 'content-type: application/json' --data-binary "@$OUT/review.json" \
        "$(url "$server")" >"$OUT/$server-answer.json"
    if ! grep -q '"allowed":true' "$OUT/$server-answer.json" || ! grep -q '"patch":' "$OUT/$server-answer.json"; then
        echo "$server did not admit the review with a patch:" >&2
        cat "$OUT/$server-answer.json" >&2
        exit 1
    fi
    IDLE_RSS[$server]=$(awk '/^VmRSS/ {print $2}' "/proc/${PID[$server]}/status")
done

# h2load with its per-request log; prints "req_per_s p50_us p99_us p999_us errors".
run_h2load() { # server clients streams requests logname [extra args]
    local server=$1 c=$2 m=$3 n=$4 log="$OUT/$5"
    shift 5
    h2load -t 1 -c "$c" -m "$m" -n "$n" -d "$OUT/review.json" \
        -H 'content-type: application/json' --log-file="$log.tsv" "$@" "$(url "$server")" >"$log.out" 2>&1
    local rps errors
    rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$log.out")
    errors=$(awk '/^requests:/ {print $10 + $12}' "$log.out")
    # Columns: start (µs since epoch), status, duration (µs). Non-2xx counts as an error too.
    local non200
    non200=$(awk -F'\t' '$2 != 200' "$log.tsv" | wc -l)
    cut -f3 "$log.tsv" | sort -n | awk -v rps="$rps" -v err="$((errors + non200))" '
        { d[NR] = $1 }
        END { printf "%s %d %d %d %d\n", rps, d[int(NR*0.50)], d[int(NR*0.99)], d[int(NR*0.999)], err }'
}

cpu_ticks() { # pid -> user+system clock ticks of the whole process
    awk '{print $14 + $15}' "/proc/$1/stat"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

rss() { # pid -> "VmRSS_KiB VmHWM_KiB"
    awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r, h}' "/proc/$1/status"
}

declare -A BEST
results="$OUT/results.md"
{
    echo "Load before the runs: $(uptime | sed 's/.*load average/load average/'), $(nproc) cores, $REQUESTS requests per run, $SAS service accounts"
    echo
    echo "| server | clients x streams | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/request | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
} >"$results"
for level in $LEVELS; do
    c=${level%x*}
    m=${level#*x}
    for server in $SERVERS; do
        run_h2load "$server" "$c" "$m" "$WARMUP" "warmup-$server-$level" >/dev/null
        before=$(cpu_ticks "${PID[$server]}")
        read -r rps p50 p99 p999 errors < <(run_h2load "$server" "$c" "$m" "$REQUESTS" "$server-$level")
        # The server's own CPU per request: unlike req/s, not capped by h2load sharing the 2 cores.
        cpu=$(awk -v t="$(($(cpu_ticks "${PID[$server]}") - before))" -v us="$TICK_US" -v n="$REQUESTS" \
            'BEGIN { printf "%.1f", t * us / n }')
        echo "| $server | $c x $m | $rps | $p50 | $p99 | $p999 | $cpu | $errors |" | tee -a "$results"
        best=${BEST[$server]:-0}
        if awk -v a="$rps" -v b="$best" 'BEGIN { exit !(a > b) }'; then BEST[$server]=$rps; fi
    done
done

{
    echo
    echo "| server | max req/s | ratio to noop | half-rate run: req/s | p50 µs | p99 µs | p99.9 µs | RSS idle KiB | RSS after all runs KiB | peak RSS KiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >>"$results"
for server in $SERVERS; do
    # Half of this server's own maximum, spread over 4 connections at a fixed rate each.
    half=$(awk -v b="${BEST[$server]}" 'BEGIN { printf "%d", b / 2 }')
    per_client=$(((half + 3) / 4))
    n=$((half * 10 > 5000 ? half * 10 : 5000))
    read -r hrps hp50 hp99 hp999 _ < <(run_h2load "$server" 4 1 "$n" "$server-half" --rps="$per_client")
    ratio="-"
    [ -n "${BEST[noop]:-}" ] && ratio=$(awk -v a="${BEST[$server]}" -v b="${BEST[noop]}" 'BEGIN { printf "%.2f", a / b }')
    read -r now peak < <(rss "${PID[$server]}")
    echo "| $server | ${BEST[$server]} | $ratio | $hrps | $hp50 | $hp99 | $hp999 | ${IDLE_RSS[$server]} | $now | $peak |" | tee -a "$results"
done
echo
echo "h2load outputs and per-request logs: $OUT; tables: $results"
cat "$results"
