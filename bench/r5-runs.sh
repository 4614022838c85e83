#!/usr/bin/env bash
# r5-runs.sh - the compare.sh series recorded in docs/performance.md (4 KiB N=10000, 64 KiB,
# RCPTS=10, REUSE=1, paced). Usage: MTAD_BIN=/path/to/mtad bench/r5-runs.sh [run...]
# Each run appends to $RESULTS_DIR; load averages are printed around each run because
# the machine is shared and decides more than any change.
set -euo pipefail
CMP=${CMP:-/work/shared/bench/compare.sh}
: "${MTAD_BIN:?set MTAD_BIN}"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MTAD_CMD="$MTAD_BIN -config $ROOT/examples/bench-relay -data /var/tmp/mtad-bench -log-level warn"
export REPEATS=${REPEATS:-3}
run() { # name, then env assignments
    local name=$1; shift
    echo "### $name: $* (uptime before: $(uptime | sed 's/.*load/load/'))"
    env "$@" OUT="${RESULTS_DIR:-$PWD/bench-results}/r5-$name-$(date -u +%H%M%S).txt" "$CMP" | grep -v '^#' || true
    echo "### $name done (uptime after: $(uptime | sed 's/.*load/load/'))"
}
runs=${*:-base4k size64k rcpts10 reuse paced}
for r in $runs; do
    case $r in
    base4k) run base4k N=10000 C=20 ;;
    size64k) run size64k N=5000 C=20 SIZE=65536 ;;
    rcpts10) run rcpts10 N=3000 C=20 RCPTS=10 ;;
    reuse) run reuse N=5000 C=20 REUSE=1 ;;
    # Postfix's default process limit is 100 smtpd: 100 sessions, each one message a
    # second, offer ~100 msg/s to both (Postfix saturates at ~250-300 here).
    paced) run paced N=3000 C=100 PACE_S=1 ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
    esac
done
