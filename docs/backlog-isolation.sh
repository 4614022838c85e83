#!/usr/bin/env bash
# backlog-isolation.sh - the backlog isolation measurement: delivery latency of a paced stream
# to a healthy destination while one channel holds a large backlog for a
# destination that accepts connections and never answers. See docs/performance.md,
# "Backlog isolation".
#
#   docs/backlog-isolation.sh            # 500 messages x 100 recipients, stream 20/s x 30 s
#   BACKLOG_MSGS=50000 BACKLOG_RCPTS=1 docs/backlog-isolation.sh
#   MODE=pool docs/backlog-isolation.sh  # dead domain in its own channel and pool
#   BACKLOG_MSGS=0 docs/backlog-isolation.sh   # baseline: no backlog
#
# Both destinations are on one port: ok.test is the literal [127.0.0.1] (where
# mtaload's sink listens) and dead.test [127.0.0.2] (a black hole); Linux routes all
# of 127/8 to loopback. Everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKLOG_MSGS=${BACKLOG_MSGS:-500}
BACKLOG_RCPTS=${BACKLOG_RCPTS:-100}
RATE=${RATE:-20}
STREAM=${STREAM:-600}
MODE=${MODE:-channel}   # channel: both destinations in tcp_local; pool: dead.test in tcp_dead, own pool
WORK=${WORK:-/var/tmp/backlog-isolation}

rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/config" "$WORK/data"
go build -o "$WORK/bin/mtad" ./cmd/mtad
go build -o "$WORK/bin/mtaload" ./cmd/mtaload

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

if [[ $MODE == pool ]]; then
    cat >"$WORK/config/imta.cnf" <<EOF
localhost        \$U%localhost@localhost
ok.test          \$U%[127.0.0.1]@tcp-daemon
dead.test        \$U%[127.0.0.2]@tcp_dead-daemon

l
localhost

tcp_local smtp nomx single_sys port $PORT pool SMTP_POOL
tcp-daemon

tcp_dead smtp nomx single_sys port $PORT maxjobs 3 pool SMTP_DEAD
tcp_dead-daemon
EOF
    cat >"$WORK/config/job_controller.cnf" <<EOF
[POOL=DEFAULT]
JOB_LIMIT=10
[POOL=SMTP_POOL]
JOB_LIMIT=10
[POOL=SMTP_DEAD]
JOB_LIMIT=2
EOF
else
    cat >"$WORK/config/imta.cnf" <<EOF
localhost        \$U%localhost@localhost
ok.test          \$U%[127.0.0.1]@tcp-daemon
dead.test        \$U%[127.0.0.2]@tcp-daemon

l
localhost

tcp_local smtp nomx single_sys port $PORT
tcp-daemon
EOF
fi

# The black hole: accepts on 127.0.0.2:PORT, never writes, counts connections.
python3 -u -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.2", int(sys.argv[1])))
s.listen(4096)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)
    print("accepted", len(conns), flush=True)
' "$PORT" >"$WORK/blackhole.log" 2>&1 &
BH=$!
"$WORK/bin/mtad" -config "$WORK/config" -data "$WORK/data" -listen 127.0.0.1:0 \
    -ready-file "$WORK/ready" -log-level warn -shutdown-grace 2s 2>"$WORK/mtad.log" &
MTAD=$!
trap 'kill $MTAD $BH 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do [[ -s $WORK/ready ]] && break; sleep 0.1; done
ADDR=$(cat "$WORK/ready")

/work/shared/bench/sysinfo.sh
echo "# mode=$MODE backlog=${BACKLOG_MSGS}x${BACKLOG_RCPTS} stream=$STREAM rate=$RATE port=$PORT"

if ((BACKLOG_MSGS > 0)); then
    echo "## backlog: $BACKLOG_MSGS messages x $BACKLOG_RCPTS recipients to dead.test"
    "$WORK/bin/mtaload" -addr "$ADDR" -sink "" -n "$BACKLOG_MSGS" -rcpts "$BACKLOG_RCPTS" \
        -c 20 -size 1024 -to d@dead.test -timeout 10m
    sleep 2
    echo "# black hole connections before the stream: $(grep -c accepted "$WORK/blackhole.log" || true)"
fi
echo "## stream: $STREAM messages at $RATE/s to ok.test (sink 127.0.0.1:$PORT)"
"$WORK/bin/mtaload" -addr "$ADDR" -sink "127.0.0.1:$PORT" -n "$STREAM" -rate "$RATE" \
    -c 4 -size 1024 -to v@ok.test -timeout "${STREAM_TIMEOUT:-8m}" || true
echo "# black hole connections at the end: $(grep -c accepted "$WORK/blackhole.log" || true)"
echo "# mail.log: D=$(grep -c ' tcp_local D ' "$WORK/data/mail.log" || true) Q=$(grep -c ' Q ' "$WORK/data/mail.log" || true)"
