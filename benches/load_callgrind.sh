#!/usr/bin/env bash
# Instructions per review of the whole server process (TLS, HTTP/2, handler, logging, metrics), under
# callgrind: the noise-free cross-check of `benches/load.sh`'s CPU times, for a machine whose other
# load makes wall and CPU times wander. User-space instructions only: syscalls cost nothing here.
#
# Starts the fake API server and each server of SERVERS (as `benches/load.sh` does) under
# `valgrind --tool=callgrind`, sends WARMUP reviews, zeroes the counters, sends REQUESTS reviews with
# h2load (TLS, HTTP/2, ROUND_LEVEL clients x streams), dumps, and prints instructions per review and
# the webhook's own work = (live - noop) / (parse - noop) in units of one parse.
#
# Usage, from the repository root:  benches/load_callgrind.sh
# Knobs (environment): SERVERS="live noop parse", REQUESTS=2000, WARMUP=300, SAS=10000,
# ROUND_LEVEL=4x16, LOG_LEVEL=info, OUT=<dir>, BIN=<a prebuilt loadtest_server, skips the build>.
set -euo pipefail

cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-"live noop parse"}
REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-300}
SAS=${SAS:-10000}
ROUND_LEVEL=${ROUND_LEVEL:-4x16}
LOG_LEVEL=${LOG_LEVEL:-info}
OUT=${OUT:-$(mktemp -d -t azwi-callgrind.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load is needed (Debian: nghttp2-client)" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then
    cargo build --release --example loadtest_server
    BIN="$TARGET/release/examples/loadtest_server"
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN" certs "$OUT/certs"
"$BIN" write-review "$OUT/review.json"
rm -f "$OUT/apiserver.url"
"$BIN" apiserver --service-accounts "$SAS" --out "$OUT" 2>"$OUT/apiserver.log" &
pids+=($!)
for _ in $(seq 1 600); do [ -s "$OUT/apiserver.url" ] && break; sleep 0.1; done

c=${ROUND_LEVEL%x*}
m=${ROUND_LEVEL#*x}
load() { # port requests
    h2load -t 1 -c "$c" -m "$m" -n "$2" -d "$OUT/review.json" -H 'content-type: application/json' \
        "https://127.0.0.1:$1/mutate-v1-pod?timeout=10s" >"$OUT/h2load-$1-$2.out" 2>&1
    grep -q "succeeded, 0 failed, 0 errored" "$OUT/h2load-$1-$2.out" ||
        { echo "h2load against :$1 had failures:" >&2; cat "$OUT/h2load-$1-$2.out" >&2; exit 1; }
}

declare -A INSTRUCTIONS
port=19543
for server in $SERVERS; do
    port=$((port + 10))
    args=(--cert-dir "$OUT/certs" --addr "127.0.0.1:$port" --health-addr "127.0.0.1:$((port + 1))"
        --metrics-addr "127.0.0.1:$((port + 2))")
    case $server in
    live) args=(webhook "${args[@]}" --apiserver "$OUT" --log-level "$LOG_LEVEL") ;;
    noop | parse) args=("$server" "${args[@]}") ;;
    *) echo "unknown server $server" >&2; exit 1 ;;
    esac
    valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$OUT/callgrind.$server.%p" \
        "$BIN" "${args[@]}" 2>"$OUT/$server.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 1200); do
        curl -sf -o /dev/null "http://127.0.0.1:$((port + 1))/readyz" && break
        sleep 0.1
    done
    load "$port" "$WARMUP"
    callgrind_control -z "$pid" >/dev/null
    load "$port" "$REQUESTS"
    callgrind_control -d "$pid" >/dev/null
    # The dump after the zeroing is the highest-numbered part file.
    part=$(ls -v "$OUT/callgrind.$server.$pid".* | tail -n 1)
    total=$(callgrind_annotate "$part" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    INSTRUCTIONS[$server]=$((total / REQUESTS))
    kill "$pid" 2>/dev/null || true
    echo "$server: ${INSTRUCTIONS[$server]} instructions per review ($part)" >&2
done

echo
echo "| server | instructions per review |"
echo "|---|---:|"
for server in $SERVERS; do echo "| $server | ${INSTRUCTIONS[$server]} |"; done
if [ -n "${INSTRUCTIONS[live]:-}" ] && [ -n "${INSTRUCTIONS[noop]:-}" ] && [ -n "${INSTRUCTIONS[parse]:-}" ]; then
    awk -v l="${INSTRUCTIONS[live]}" -v n="${INSTRUCTIONS[noop]}" -v p="${INSTRUCTIONS[parse]}" 'BEGIN {
        printf "\nOwn work (live - noop): %d instructions; one parse (parse - noop): %d; own work = %.2f parses\n",
            l - n, p - n, (l - n) / (p - n) }'
fi
