#!/usr/bin/env bash
# requeue.sh - qm requeue on a large backlog: N messages (a million by default)
# queued in tcp_local for one destination (d0.example), tried once and deferred,
# are moved to a channel of their own (tcp_dead, its own pool) after the
# configuration change the product's documentation recommends, while mtaload
# sends a steady stream through tcp_local to its sink. Prints the fill time,
# mtad's memory before, during and after, the requeue's time and rate, its
# progress lines, and the stream's latencies. Uses SMTP 2545 and sink 2546;
# loopback only.
#   MTAD_BIN=... MTACTL_BIN=... FILL_BIN=... LOAD_BIN=... [N=1000000] [RATE=50] bench/requeue.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${MTAD_BIN:?}" "${MTACTL_BIN:?}" "${FILL_BIN:?}" "${LOAD_BIN:?}"
N=${N:-1000000}; RATE=${RATE:-50}
D=${DATA:-/var/tmp/mtad-requeue}; CFG=$D.config
rm -rf "$CFG" "$D"; cp -r "$ROOT/examples/bench-relay" "$CFG"; mkdir -p "$D"
sed -i 's/port 2526/port 2546/' "$CFG/imta.cnf"
sed -i 's/^PORT=2525/PORT=2545/' "$CFG/dispatcher.cnf"
ctl() { "$MTACTL_BIN" -config "$CFG" -data "$D" "$@"; }
now() { date +%s.%N; }
mem() { echo "rss_kib=$(awk '/VmRSS/{print $2}' /proc/$MPID/status) anon_kib=$(awk '/RssAnon/{print $2}' /proc/$MPID/status) file_kib=$(awk '/RssFile/{print $2}' /proc/$MPID/status) hwm_kib=$(awk '/VmHWM/{print $2}' /proc/$MPID/status)"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ctl cnbuild
t0=$(now)
"$FILL_BIN" -dir "$D/queue" -n "$N" -hosts 1 -next-attempt 24h
echo "requeue fill_s=$(echo "$(now) - $t0" | bc) n=$N disk=$(du -sh "$D/queue" | cut -f1)"

t0=$(now)
"$MTAD_BIN" -config "$CFG" -data "$D" -log-level warn -ready-file "$D/ready" >>"$D/mtad.out" 2>&1 &
MPID=$!; pids+=("$MPID")
while [[ ! -s $D/ready ]]; do kill -0 "$MPID"; sleep 0.05; done
until ctl qm summarize 2>/dev/null | grep -q '^tcp_local'; do sleep 0.5; done
echo "requeue started_s=$(echo "$(now) - $t0" | bc) $(mem)"

# The administrator's change: d0.example gets its own channel and pool (its
# port is closed: the destination is unreachable).
sed -i 's/^\. /d0.example       $U%$D@tcp_dead-daemon\n&/' "$CFG/imta.cnf"
printf '\ntcp_dead smtp nomx single_sys daemon 127.0.0.1 port 9 pool SMTP_DEAD maxjobs 2\ntcp_dead-daemon\n' >>"$CFG/imta.cnf"
printf '[POOL=SMTP_DEAD]\nJOB_LIMIT=2\n' >>"$CFG/job_controller.cnf"
ctl cnbuild
ctl reload

"$LOAD_BIN" -addr 127.0.0.1:2545 -sink 127.0.0.1:2546 -n $((RATE * 100000)) -c 4 -rate "$RATE" -size 2048 \
    -timeout 2h >"$D/load.out" 2>&1 &
LPID=$!; pids+=("$LPID")
sleep 5
( while kill -0 "$MPID" 2>/dev/null; do echo "requeue mem t=$(date +%s) $(mem)"; sleep 10; done ) &
pids+=("$!")
t0=$(now)
ctl qm requeue -domain d0.example | tee "$D/requeue.out"
el=$(echo "$(now) - $t0" | bc)
echo "requeue done_s=$el msgs_per_s=$(echo "$N / $el" | bc) $(mem)"
sleep 5
kill -INT "$LPID"; wait "$LPID" || true
echo "requeue stream: $(tail -1 "$D/load.out")"
ctl qm summarize
