#!/usr/bin/env bash
# ab.sh - one mtad binary against smtp-source/smtp-sink, for alternating A/B pairs of
# two builds on a shared machine (compare.sh's Postfix runs take longer than the
# change being measured). Loopback only: SMTP 127.0.0.1:2525, sink 127.0.0.1:2526.
#   bench/ab.sh BIN [N] [mtad args...]          e.g. for i in 1 2 3; do
#                                                      bench/ab.sh /tmp/mtad-a 10000
#                                                      bench/ab.sh /tmp/mtad-b 10000; done
# Prints the accept rate, mtad's CPU per message (utime+stime from /proc), the DATA
# commit wait and index commits from /metrics, and mtad's read/write syscall counts.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:?usage: ab.sh BIN [N] [mtad args]}; N=${2:-10000}; shift $(( $# > 1 ? 2 : 1 ))
WORK=$(mktemp -d /var/tmp/mtad-ab.XXXXXX)
cp -r "$ROOT/examples/bench-relay" "$WORK/config"
echo "METRICS_LISTEN=127.0.0.1:9100" >>"$WORK/config/option.dat"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
smtp-sink -4 -c -u nobody 127.0.0.1:2526 1024 >"$WORK/sink.out" 2>&1 & pids+=($!)
"$BIN" -config "$WORK/config" -data "$WORK/data" -log-level warn "$@" >"$WORK/mtad.log" 2>&1 & MT=$!; pids+=($MT)
for _ in $(seq 50); do ss -ltn | grep -q ':2525 ' && break; sleep 0.1; done
src() { smtp-source -4 -s 20 -m "$1" -l 4096 -N -f bench-sender@src.invalid -t bench@dst.invalid 127.0.0.1:2525; }
src 200 # warm-up, not timed
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$MT/stat"; }
t0=$(date +%s.%N); c0=$(cpu)
src "$N"
t1=$(date +%s.%N); c1=$(cpu)
metrics=$(curl -s 127.0.0.1:9100/metrics)
m() { echo "$metrics" | awk -v k="$1" '$1 == k {print $2}'; }
python3 - "$N" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" "$(m mtad_queue_commit_duration_seconds_sum)" \
    "$(m mtad_queue_commit_duration_seconds_count)" "$(m mtad_queue_commit_batch_messages_count)" <<'PY'
import sys
n, t0, t1, c0, c1, hz, wsum, wcnt, commits = sys.argv[1:]
n = int(n); t = float(t1) - float(t0)
print(f"accept_msgs_per_s={n / t:.0f} mtad_cpu_us_per_msg={(float(c1) - float(c0)) / float(hz) * 1e6 / n:.0f} "
      f"commit_wait_ms={float(wsum) / float(wcnt) * 1000:.2f} index_commits_per_msg={float(commits) / float(wcnt):.3f}", end=" ")
PY
grep -E "syscr|syscw" "/proc/$MT/io" | tr '\n' ' '; echo
