#!/usr/bin/env bash
# compare-builds.sh - two mtad builds and Postfix through the same harness, alternating
# in one run (Postfix, build A, build B; REPEATS rounds), so that a change is measured
# against its parent and both against Postfix on the same machine at the same time.
# Loopback only: every MTA listens on 127.0.0.1:2525 and relays to smtp-sink on
# 127.0.0.1:2526 (../shared/bench/mta-bench.sh).
#
#   bench/compare-builds.sh /var/tmp/mtad-before /var/tmp/mtad-after
#
# Env: REPEATS [3], N [10000], C [20], SIZE [4096], RCPTS, REUSE (as mta-bench.sh),
#      SHARED [../shared/bench relative to the repository], RESULTS_DIR [./bench-results].
# Prints the medians per MTA and the ratios after/before and each build/Postfix.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A=${1:?usage: compare-builds.sh BIN_BEFORE BIN_AFTER}; B=${2:?usage: compare-builds.sh BIN_BEFORE BIN_AFTER}
SHARED=${SHARED:-$ROOT/../shared/bench}
REPEATS=${REPEATS:-3}; export N=${N:-10000} C=${C:-20} SIZE=${SIZE:-4096}
RESULTS_DIR=${RESULTS_DIR:-$PWD/bench-results}; mkdir -p "$RESULTS_DIR"
export RESULTS_FILE=${OUT:-$RESULTS_DIR/$(date -u +%Y-%m-%dT%H%M%S)-builds.txt}
"$SHARED/sysinfo.sh" >>"$RESULTS_FILE"
echo "# compare-builds: repeats=$REPEATS n=$N c=$C size=$SIZE before=$A after=$B" >>"$RESULTS_FILE"
run_mtad() { # NAME BIN
    local data; data=$(mktemp -d /var/tmp/mtad-cb.XXXXXX)
    MTA_NAME=$1 START_CMD="$2 -config $ROOT/examples/bench-relay -data $data -log-level warn" \
        "$SHARED/mta-bench.sh" >/dev/null || echo "# $1 run failed" >>"$RESULTS_FILE"
    rm -rf "$data"
}
for ((i = 1; i <= REPEATS; i++)); do
    "$SHARED/postfix-relay.sh" >/dev/null || echo "# postfix run $i failed" >>"$RESULTS_FILE"
    sleep 2
    run_mtad before "$A"; sleep 2
    run_mtad after "$B"; sleep 2
done
python3 "$SHARED/summarize.py" "$RESULTS_FILE" | tee -a "$RESULTS_FILE"
python3 - "$RESULTS_FILE" <<'PY' | tee -a "$RESULTS_FILE"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if line.startswith("#") or len(parts) < 2:
        continue
    kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if kv.get("status") == "ok":
        runs.setdefault(parts[0], []).append(kv)
def med(name, key):
    v = [float(r[key]) for r in runs.get(name, []) if key in r]
    return statistics.median(v) if v else None
for a, b in (("after", "before"), ("before", "postfix"), ("after", "postfix")):
    out = []
    for key in ("e2e_msgs_per_s", "accept_msgs_per_s", "cpu_mta_us_per_msg", "lat_p99_ms"):
        x, y = med(a, key), med(b, key)
        out.append(f"{key}_ratio=" + (f"{x / y:.2f}" if x is not None and y else "n/a"))
    print(f"# ratio {a}/{b}: " + " ".join(out))
PY
