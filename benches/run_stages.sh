#!/usr/bin/env bash
# Runs the stage benches RUNS times and prints the BENCHMARKS.md table (median over runs of the
# criterion medians). Usage, from the repository root: benches/run_stages.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$(mktemp -d -t azwi-stages.XXXXXX)}
mkdir -p "$OUT"
# The review sizes, from the fixtures themselves.
cargo build --release --example loadtest_server
for size in small typical large huge; do
    "$TARGET/release/examples/loadtest_server" write-review "$OUT/review-$size.json" "$size"
done
python3 -c "import json,os,sys; d=sys.argv[1]; print(json.dumps({s: os.path.getsize(f'{d}/review-{s}.json') for s in ['small','typical','large','huge']}))" "$OUT" >"$OUT/sizes.json"
for i in $(seq 1 "$RUNS"); do
    echo "run $i: $(uptime)" | tee -a "$OUT/load.txt"
    cargo bench --bench stages -- --warm-up-time 2 --measurement-time 5 >"$OUT/run-$i.log" 2>&1
    python3 benches/criterion_table.py collect "$TARGET/criterion" >"$OUT/run-$i.json"
done
echo "after: $(uptime)" | tee -a "$OUT/load.txt"
python3 benches/criterion_table.py table "$OUT"/run-*.json | tee "$OUT/table.md"
