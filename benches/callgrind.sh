#!/usr/bin/env bash
# Instructions per iteration of each stage (callgrind), repeatable where wall time on a shared VM
# is not. Each figure is (Ir(N+K) - Ir(N)) / K, so setup and fixture generation cancel out.
# Usage, from the repository root: benches/callgrind.sh [SIZES] [STAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${1:-"small typical large huge"}
STAGES=${2:-"floor decode plan encode hot_path baseline"}
OUT=${OUT:-$(mktemp -d -t azwi-callgrind.XXXXXX)}
mkdir -p "$OUT"
cargo bench --bench stages --no-run
BIN=$(cargo bench --bench stages --no-run --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*/stages-[^"]*"' | sed 's/.*:"//; s/"$//' | head -1)

instructions() { # stage size iterations
    local file="$OUT/$1-$2-$3.out"
    BENCH_CALLGRIND="$1:$2:$3" valgrind --tool=callgrind --callgrind-out-file="$file" "$BIN" >/dev/null 2>&1
    awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

printf "| size | %s |\n|---|%s\n" "$(echo "$STAGES" | sed 's/ / | /g')" "$(for _ in $STAGES; do printf -- '---:|'; done)"
for size in $SIZES; do
    case $size in huge) k=3 ;; large) k=10 ;; *) k=40 ;; esac
    row="| $size |"
    for stage in $STAGES; do
        base=$(instructions "$stage" "$size" 1)
        more=$(instructions "$stage" "$size" $((1 + k)))
        row="$row $(((more - base) / k)) |"
    done
    echo "$row"
done
echo "(instructions per iteration; callgrind outputs in $OUT)"
