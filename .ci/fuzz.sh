#!/bin/sh
# Short cargo-fuzz run of the admission target on the stable toolchain (no sanitizer).
# Usage: .ci/fuzz.sh [seconds]   (default 60). Needs `cargo install cargo-fuzz` (~75 s once);
# the first build of fuzz/ takes ~5 min on 2 cores, later runs ~5 s.
set -eu
seconds="${1:-60}"
cd "$(dirname "$0")/../fuzz"
mkdir -p corpus/admit
exec cargo fuzz run -s none admit corpus/admit seeds/admit -- \
    -dict=admission.dict -max_len=65536 -max_total_time="$seconds" -print_final_stats=1
