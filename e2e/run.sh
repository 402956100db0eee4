#!/usr/bin/env bash
# The end-to-end suite against a real kube-apiserver, in one command:
#
#   e2e/run.sh [nextest args...]     e.g. e2e/run.sh -E 'test(guide)'
#
# Starts the control plane (e2e/with-cluster.sh) and runs the `e2e_apiserver` tests (nextest profile
# `e2e`) against it.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/with-cluster.sh" cargo nextest run --locked --profile e2e "$@"
