#!/usr/bin/env bash
# Pod creation through the real kube-apiserver with and without the webhook, side by side:
#
#   e2e/bench.sh [--pods N] [--concurrency C] [--rounds R]     (defaults 2000, 16, 2)
#
# See examples/apiserver_pods.rs; the figures go in BENCHMARKS.md.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/with-cluster.sh" \
  cargo run --release --locked --example apiserver_pods -- "$@"
