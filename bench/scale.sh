#!/usr/bin/env bash
# scale.sh - the scale test: a million messages queued for a stopped channel.
# Fills DATA/queue with bench/fillqueue (mtad down), starts mtad, records resident
# memory, `qm summarize` time, restart (recovery) time, then `qm start` and the drain
# rate into smtp-sink. Uses its own ports (SMTP 2535, sink 2536) so it does not collide
# with compare.sh; loopback only.
#   MTAD_BIN=... MTACTL_BIN=... FILL_BIN=... [N=1000000] [SIZE=1024] [DRAIN_S=60] bench/scale.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${MTAD_BIN:?}" "${MTACTL_BIN:?}" "${FILL_BIN:?}"
N=${N:-1000000}; SIZE=${SIZE:-1024}; DRAIN_S=${DRAIN_S:-60}
D=${DATA:-/var/tmp/mtad-scale}; CFG=$D.config
SKIP_FILL=${SKIP_FILL:-0}
rm -rf "$CFG"; cp -r "$ROOT/examples/bench-relay" "$CFG"
sed -i 's/port 2526/port 2536/' "$CFG/imta.cnf"
sed -i 's/^PORT=2525/PORT=2535/' "$CFG/dispatcher.cnf"
ctl() { "$MTACTL_BIN" -config "$CFG" -data "$D" "$@"; }
now() { date +%s.%N; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [[ $SKIP_FILL != 1 ]]; then
    rm -rf "$D"; mkdir -p "$D"
    ctl qm stop tcp_local
    t0=$(now)
    "$FILL_BIN" -dir "$D/queue" -n "$N" -size "$SIZE"
    echo "scale fill_s=$(echo "$(now) - $t0" | bc) n=$N size=$SIZE disk=$(du -sh "$D/queue" | cut -f1) db=$(du -sh "$D/queue/queue.db" | cut -f1)"
fi

start_mtad() { # sets MPID; prints seconds to ready (SMTP bound) and to the full index
    rm -f "$D/ready"
    local t0; t0=$(now)
    "$MTAD_BIN" -config "$CFG" -data "$D" -log-level warn ${MTAD_ARGS:-} -ready-file "$D/ready" >>"$D/mtad.out" 2>&1 &
    MPID=$!; pids+=("$MPID")
    while [[ ! -s $D/ready ]]; do
        kill -0 "$MPID" || { echo "mtad died"; tail "$D/mtad.out"; exit 1; }
        sleep 0.05
    done
    echo "scale start ready_s=$(echo "$(now) - $t0" | bc) rss_kib=$(awk '/VmRSS/{print $2}' /proc/$MPID/status) anon_kib=$(awk '/RssAnon/{print $2}' /proc/$MPID/status) file_kib=$(awk '/RssFile/{print $2}' /proc/$MPID/status) hwm_kib=$(awk '/VmHWM/{print $2}' /proc/$MPID/status)"
}

summ() {
    local t0; t0=$(now)
    ctl qm summarize >"$D/summ.txt" 2>&1 || true
    echo "scale summarize_s=$(echo "$(now) - $t0" | bc) $(tr -s ' \n' ' ' <"$D/summ.txt" | cut -c1-300)"
}

start_mtad
sleep 5
summ
sleep 10
echo "scale settled rss_kib=$(awk '/VmRSS/{print $2}' /proc/$MPID/status) anon_kib=$(awk '/RssAnon/{print $2}' /proc/$MPID/status) file_kib=$(awk '/RssFile/{print $2}' /proc/$MPID/status) hwm_kib=$(awk '/VmHWM/{print $2}' /proc/$MPID/status)"
summ
t0=$(now); kill -TERM "$MPID"; wait "$MPID" || true
echo "scale stop_s=$(echo "$(now) - $t0" | bc)"
start_mtad
sleep 5
summ
echo "scale restarted rss_kib=$(awk '/VmRSS/{print $2}' /proc/$MPID/status) anon_kib=$(awk '/RssAnon/{print $2}' /proc/$MPID/status) file_kib=$(awk '/RssFile/{print $2}' /proc/$MPID/status) hwm_kib=$(awk '/VmHWM/{print $2}' /proc/$MPID/status)"

smtp-sink -4 -c -u nobody 127.0.0.1:2536 1024 >/dev/null 2>"$D/sink.err" &
pids+=("$!"); sleep 0.5
ctl qm start tcp_local
t0=$(now)
for ((i = 0; i < DRAIN_S / 10; i++)); do
    sleep 10
    echo "scale drain t_s=$(echo "$(now) - $t0" | bc) rss_kib=$(awk '/VmRSS/{print $2}' /proc/$MPID/status) anon_kib=$(awk '/RssAnon/{print $2}' /proc/$MPID/status) file_kib=$(awk '/RssFile/{print $2}' /proc/$MPID/status) cpu_ticks=$(awk '{print $14+$15}' /proc/$MPID/stat) delivered=$(grep -c " D " "$D/mail.log" || true)"
done
summ
kill -TERM "$MPID"; wait "$MPID" || true
