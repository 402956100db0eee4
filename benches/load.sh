#!/usr/bin/env bash
# End-to-end load benchmark of the real TLS HTTP/2 server (see BENCHMARKS.md): the webhook as
# deployed against two references on the same server stack, in paired rounds on one machine.
#
# Builds the `loadtest_server` example (release), generates serving certificates, starts
#   - a fake API server holding $SAS service accounts (its own process, so it is not in the RSS),
#   - live:  the real `app::serve` at `--log-level=info` (as `manifests/` deploys it), reading each
#            pod's service account through the real kube client and its metadata cache,
#   - noop:  the same server stack (TLS, HTTP/2, axum) answering every POST with a fixed body the
#            size of the real answer, after reading the body in full,
#   - parse: noop that also parses the body with serde_json into `IgnoredAny`: parse - noop is the
#            price of one parse of the review, the yardstick of the webhook's own work,
# and, when asked for:
#   - cache:    the same Admitter with the service accounts in memory, not `app::serve`,
#   - base:     `live` from another build, BASE_BIN (e.g. of the previous commit), side by side,
#   - upstream: any other webhook, started by UPSTREAM_CMD (see below).
#
# Then ROUNDS paired rounds: each round runs every server once at ROUND_LEVEL (clients x streams),
# in a rotated order, and reads each server's CPU time (all threads, the scheduler's run time in ns
# from schedstat) around the run. The same binary's CPU per request wanders by about 20 % from one
# run to the next on a shared VM, so many short rounds beat a few long ones. Reported per server:
# median CPU µs per request, median req/s, p99 at half of its own maximum rate, RSS idle / after /
# peak; and per round the webhook's own work = (live - noop) / (parse - noop) in units of one parse,
# with its median and quartiles. LEVELS adds a sweep over concurrency levels. RATE (total reviews
# per second, below every server's maximum) runs the rounds at that fixed rate instead of as fast as
# each server goes: every server then gets the same arrivals, so none batches more reviews per
# wake-up than another, and h2load's own speed drops out of the servers' CPU per review.
#
# Usage, from the repository root:  benches/load.sh
# Knobs (environment): SERVERS="live noop parse", ROUNDS=15, ROUND_LEVEL=4x16, REQUESTS=20000 per
# run, WARMUP=1000, RATE="" (e.g. 8000), SAS=10000, LEVELS="" (e.g. "1x1 2x4 4x8 8x16"), LOG_LEVEL=info (for live, cache
# and base), SERVER_CPUS and CLIENT_CPUS (taskset CPU lists; unset, nothing is pinned), OUT=<dir for
# logs and results>, CARGO_TARGET_DIR, BIN=<a prebuilt loadtest_server, skips the build>,
# BASE_BIN=<the loadtest_server for `base`>, UPSTREAM_CMD=<command for
# `upstream`, run with OUT, PORT, HEALTH_PORT and METRICS_PORT in its environment; it must serve
# TLS on PORT with $OUT/certs, read service accounts from the API server in $OUT/apiserver.url
# (CA $OUT/apiserver-ca.pem), answer GET $UPSTREAM_READY_PATH (default /readyz) on HEALTH_PORT
# once ready, and exec the server so that its PID is the one measured>.
set -euo pipefail

cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-"live noop parse"}
ROUNDS=${ROUNDS:-15}
ROUND_LEVEL=${ROUND_LEVEL:-4x16}
LEVELS=${LEVELS:-}
RATE=${RATE:-}
REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-1000}
SAS=${SAS:-10000}
LOG_LEVEL=${LOG_LEVEL:-info}
UPSTREAM_READY_PATH=${UPSTREAM_READY_PATH:-/readyz}
OUT=${OUT:-$(mktemp -d -t azwi-load.XXXXXX)}
TARGET=${CARGO_TARGET_DIR:-target}
mkdir -p "$OUT"
# Optional CPU pinning (taskset lists, e.g. SERVER_CPUS=1 CLIENT_CPUS=0): the servers and h2load
# then never share a core, so a server's CPU time does not depend on where the scheduler put them.
pin_server=(env)
pin_client=(env)
[ -n "${SERVER_CPUS:-}" ] && pin_server=(taskset -c "$SERVER_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && pin_client=(taskset -c "$CLIENT_CPUS")

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
case " $SERVERS " in *" upstream "*) [ -n "${UPSTREAM_CMD:-}" ] || { echo "upstream needs UPSTREAM_CMD" >&2; exit 1; } ;; esac

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN" certs "$OUT/certs"
"$BIN" write-review "$OUT/review.json"

declare -A PORT=([live]=18443 [cache]=18453 [noop]=18463 [base]=18473 [parse]=18483 [upstream]=${UPSTREAM_PORT:-18493})
declare -A HEALTH=([live]=18444 [cache]=18454 [noop]=18464 [base]=18474 [parse]=18484 [upstream]=18494)
declare -A METRICS=([live]=18445 [cache]=18455 [noop]=18465 [base]=18475 [parse]=18485 [upstream]=18495)
declare -A READY_PATH=([upstream]=$UPSTREAM_READY_PATH)
declare -A PID

wait_for() { # url
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "never ready: $1" >&2
    return 1
}

case " $SERVERS " in
*" live "* | *" base "* | *" upstream "*)
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
    live) "${pin_server[@]}" "$BIN" webhook "${common[@]}" --apiserver "$OUT" --log-level "$LOG_LEVEL" 2>"$OUT/live.log" & ;;
    base) "${pin_server[@]}" "$BASE_BIN" webhook "${common[@]}" --apiserver "$OUT" --log-level "$LOG_LEVEL" 2>"$OUT/base.log" & ;;
    cache) "${pin_server[@]}" "$BIN" webhook-in-memory "${common[@]}" --service-accounts "$SAS" --log-level "$LOG_LEVEL" \
        2>"$OUT/cache.log" & ;;
    noop) "${pin_server[@]}" "$BIN" noop "${common[@]}" 2>"$OUT/noop.log" & ;;
    parse) "${pin_server[@]}" "$BIN" parse "${common[@]}" 2>"$OUT/parse.log" & ;;
    upstream) OUT="$OUT" PORT=${PORT[upstream]} HEALTH_PORT=${HEALTH[upstream]} METRICS_PORT=${METRICS[upstream]} \
        "${pin_server[@]}" bash -c "exec $UPSTREAM_CMD" >"$OUT/upstream.log" 2>&1 & ;;
    *) echo "unknown server $server" >&2; exit 1 ;;
    esac
    PID[$server]=$!
    pids+=($!)
    wait_for "http://127.0.0.1:${HEALTH[$server]}${READY_PATH[$server]:-/readyz}"
done

url() { echo "https://127.0.0.1:${PORT[$1]}/mutate-v1-pod?timeout=10s"; }

# A 200 can still be a denial: every server must answer the review with the patch before it is timed.
declare -A IDLE_RSS
for server in $SERVERS; do
    curl -sk --http2 -H 'content-type: application/json' --data-binary "@$OUT/review.json" \
        "$(url "$server")" >"$OUT/$server-answer.json"
    if ! grep -q '"allowed": *true' "$OUT/$server-answer.json" || ! grep -q '"patch":' "$OUT/$server-answer.json"; then
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
    "${pin_client[@]}" h2load -t 1 -c "$c" -m "$m" -n "$n" -d "$OUT/review.json" \
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

# A process's CPU time in ns: the sum of its threads' run time from the scheduler (schedstat),
# exact where /proc/PID/stat counts in ticks of 10 ms; the tick count when schedstat is missing.
if [ -r /proc/self/schedstat ]; then
    cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { printf "%.0f", ns }'; }
else
    cpu_ns() { awk -v ns="$((1000000000 / $(getconf CLK_TCK)))" '{ printf "%.0f", ($14 + $15) * ns }' "/proc/$1/stat"; }
fi

rss() { # pid -> "VmRSS_KiB VmHWM_KiB"
    awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r, h}' "/proc/$1/status"
}

# One timed run: appends "round server clients streams req/s p50 p99 p999 cpu_us errors" to $2.
timed_run() { # server tsv round clients streams [extra h2load args]
    local server=$1 tsv=$2 round=$3 c=$4 m=$5
    shift 5
    run_h2load "$server" "$c" "$m" "$WARMUP" "warmup-$server-$round-${c}x$m" "$@" >/dev/null
    local before rps p50 p99 p999 errors cpu
    before=$(cpu_ns "${PID[$server]}")
    read -r rps p50 p99 p999 errors < <(run_h2load "$server" "$c" "$m" "$REQUESTS" "$server-$round-${c}x$m" "$@")
    # The server's own CPU per request: unlike req/s, not capped by h2load sharing the cores.
    cpu=$(awk -v t="$(($(cpu_ns "${PID[$server]}") - before))" -v n="$REQUESTS" \
        'BEGIN { printf "%.2f", t / 1000 / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$server" "$c" "$m" "$rps" "$p50" "$p99" "$p999" "$cpu" "$errors" >>"$tsv"
}

read -r -a server_list <<<"$SERVERS"
rounds_tsv="$OUT/rounds.tsv"
: >"$rounds_tsv"
c=${ROUND_LEVEL%x*}
m=${ROUND_LEVEL#*x}
round_rate=()
[ -n "$RATE" ] && round_rate=(--rps="$(((RATE + c - 1) / c))")
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order so no server always runs first (or right after the same neighbour).
    n=${#server_list[@]}
    for i in $(seq 0 $((n - 1))); do
        server=${server_list[$(((i + round - 1) % n))]}
        timed_run "$server" "$rounds_tsv" "$round" "$c" "$m" "${round_rate[@]}"
        echo "round $round: $(tail -n 1 "$rounds_tsv" | cut -f2,5,9 | tr '\t' ' ') (server, req/s, CPU µs/request)" >&2
    done
done

sweep_tsv="$OUT/sweep.tsv"
: >"$sweep_tsv"
for level in $LEVELS; do
    for server in $SERVERS; do
        timed_run "$server" "$sweep_tsv" sweep "${level%x*}" "${level#*x}"
    done
done

# p99 at half of each server's own median maximum, spread over 4 connections at a fixed rate each.
half_tsv="$OUT/half.tsv"
: >"$half_tsv"
for server in $SERVERS; do
    best=$(awk -F'\t' -v s="$server" '$2 == s {print $5}' "$rounds_tsv" | sort -n |
        awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    half=$(awk -v b="$best" 'BEGIN { printf "%d", b / 2 }')
    per_client=$(((half + 3) / 4))
    n=$((half * 10 > 5000 ? half * 10 : 5000))
    read -r hrps hp50 hp99 hp999 herr < <(run_h2load "$server" 4 1 "$n" "$server-half" --rps="$per_client")
    read -r now peak < <(rss "${PID[$server]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$server" "$hrps" "$hp50" "$hp99" "$hp999" "$herr" "${IDLE_RSS[$server]}" "$now" "$peak" >>"$half_tsv"
done

results="$OUT/results.md"
python3 - "$rounds_tsv" "$sweep_tsv" "$half_tsv" "$SERVERS" >"$results" <<EOF
import statistics, sys
rounds_tsv, sweep_tsv, half_tsv, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
rows = [l.rstrip("\n").split("\t") for l in open(rounds_tsv) if l.strip()]
med = statistics.median
print("Load before the runs: $(uptime | sed 's/.*load average/load average/'), $(nproc) cores; "
      "$ROUNDS rounds at ${ROUND_LEVEL} (clients x streams)${RATE:+ at $RATE reviews/s}, $REQUESTS requests per run, $SAS service accounts, "
      "live at --log-level=$LOG_LEVEL")
print()
print("| server | CPU µs/request (median) | per round | req/s (median) | errors |")
print("|---|---:|---|---:|---:|")
cpu = {}
for s in servers:
    mine = [r for r in rows if r[1] == s]
    cpu[s] = {r[0]: float(r[8]) for r in mine}
    print(f"| {s} | {med(cpu[s].values()):.1f} | {' '.join(r[8] for r in mine)} "
          f"| {med(float(r[4]) for r in mine):.0f} | {sum(int(r[9]) for r in mine)} |")
if all(s in cpu for s in ("live", "noop", "parse")):
    print()
    own, parse = [], []
    for rnd in sorted(cpu["live"], key=int):
        p = cpu["parse"][rnd] - cpu["noop"][rnd]
        o = cpu["live"][rnd] - cpu["noop"][rnd]
        parse.append(p)
        own.append(o / p if p > 0 else float("inf"))
    print(f"Webhook's own work (live - noop): {med(cpu['live'][r] - cpu['noop'][r] for r in cpu['live']):.1f} µs; "
          f"one parse (parse - noop): {med(parse):.1f} µs; own work in parses, per round: "
          f"{' '.join(f'{x:.2f}' for x in own)}; **median {med(own):.2f}×** "
          f"(quartiles {' – '.join(f'{q:.2f}' for q in statistics.quantiles(own, n=4)[::2])})")
if all(s in cpu for s in ("live", "base", "noop", "parse")):
    # The same rounds for the other build: its own work, and the paired difference per round.
    base_own = [(cpu["base"][r] - cpu["noop"][r]) / (cpu["parse"][r] - cpu["noop"][r])
                for r in cpu["base"] if cpu["parse"][r] > cpu["noop"][r]]
    paired = [cpu["live"][r] - cpu["base"][r] for r in cpu["live"]]
    print(f"Base in the same rounds: own work **median {med(base_own):.2f}×** "
          f"(quartiles {' – '.join(f'{q:.2f}' for q in statistics.quantiles(base_own, n=4)[::2])}); "
          f"live - base per round: median {med(paired):+.1f} µs "
          f"(quartiles {' – '.join(f'{q:+.1f}' for q in statistics.quantiles(paired, n=4)[::2])}), "
          f"live lower in {sum(d < 0 for d in paired)} of {len(paired)} rounds")
sweep = [l.rstrip("\n").split("\t") for l in open(sweep_tsv) if l.strip()]
if sweep:
    print()
    print("| server | clients x streams | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/request | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in sweep:
        print(f"| {r[1]} | {r[2]} x {r[3]} | {r[4]} | {r[5]} | {r[6]} | {r[7]} | {r[8]} | {r[9]} |")
print()
print("| server | half-rate req/s | p50 µs | p99 µs | p99.9 µs | errors | RSS idle KiB | RSS after KiB | peak RSS KiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for l in open(half_tsv):
    r = l.rstrip("\n").split("\t")
    print("| " + " | ".join(r) + " |")
EOF
echo
echo "h2load outputs and per-request logs: $OUT; tables: $results"
cat "$results"
