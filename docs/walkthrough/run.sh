#!/usr/bin/env bash
# Reproduces the walk-through "A queue is growing: what now" of docs/operations.md.
#
#   docs/walkthrough/run.sh > docs/walkthrough/transcript.txt
#
# It builds mtad and mtactl, copies examples/site into a temporary configuration
# directory, points tcp_local at a loopback SMTP stub (smtp-stub.py, python3) that
# defers every recipient at yahoo.example with 451 4.7.0 [TSS04] and accepts the
# rest, submits mail with mtactl sendmail, then runs the troubleshooting steps of
# the product's guide (Messaging Server 6.3 Administration Guide, chapter 26
# "Troubleshooting the MTA") with our commands only. Everything listens
# on 127.0.0.1; nothing reaches the Internet (tcp_local uses no MX lookups). The
# temporary paths are printed as /etc/mta (configuration) and /var/mta/data (data).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mtawalk.XXXXXX) # short: the control socket's path is limited
cfg=$work/etc/mta
data=$work/var/mta/data
bin=$work/bin
mkdir -p "$cfg" "$(dirname "$data")" "$bin" # mtad creates the data directory itself
stub_pid= mtad_pid=
cleanup() {
	[ -n "$mtad_pid" ] && kill "$mtad_pid" 2>/dev/null && wait "$mtad_pid" 2>/dev/null
	[ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$bin/mtad" ./cmd/mtad && go build -o "$bin/mtactl" ./cmd/mtactl)
ln -s mtactl "$bin/sendmail"
export PATH=$bin:$PATH

# mask turns the temporary paths into the ones the guide uses.
mask() { sed -e "s#$cfg#/etc/mta#g" -e "s#$data#/var/mta/data#g" -e "s#$work#/tmp/walk#g"; }
# show prints a command as an administrator types it, then its output.
show() {
	echo "\$ $*" | mask
	"$@" 2>&1 | mask || true
	echo
}
step() { printf '### %s\n\n' "$*"; }
# showbulk is show for commands whose output has a line per newsletter message:
# those lines are counted, the first three kept; so are the lines of the SMTP
# dialogue (indented), the first twelve kept.
showbulk() {
	echo "\$ $*" | mask
	"$@" 2>&1 | mask | awk '
		/^  / { d++; if (d <= 12) print; else if (d == 13) print "  ..."; next }
		/news@example.com|reader[0-9]+@yahoo.example/ { n++; if (n <= 3) print; else if (n == 4) print "..."; next }
		{ print }
		END {
			if (d > 12) printf "(%d lines of SMTP dialogue in all)\n", d
			if (n > 3) printf "(%d lines for the newsletter in all)\n", n
		}' || true
	echo
}

# The loopback "Internet": one stub standing for every remote MX.
python3 "$repo/docs/walkthrough/smtp-stub.py" --port-file "$work/stub.port" --stuck yahoo.example --ok "$work/yahoo-ok" &
stub_pid=$!
for _ in $(seq 100); do [ -s "$work/stub.port" ] && break; sleep 0.05; done
port=$(cat "$work/stub.port")

# examples/site, with tcp_local sent to the stub instead of MX hosts.
cp "$repo"/examples/site/* "$cfg/"
sed -i "s/^tcp_local smtp mx single_sys /tcp_local smtp nomx single_sys daemon 127.0.0.1 port $port /" "$cfg/imta.cnf"
grep -q "daemon 127.0.0.1 port $port" "$cfg/imta.cnf" || { echo "run.sh: examples/site/imta.cnf changed: update the sed" >&2; exit 1; }
mtactl -config "$cfg" cnbuild >/dev/null

mtad -config "$cfg" -data "$data" -listen 127.0.0.1:0 -ready-file "$work/ready" -log-level warn 2>"$work/mtad.stderr" &
mtad_pid=$!
for _ in $(seq 200); do [ -s "$work/ready" ] && break; sleep 0.05; done

export MTAD_DATA=$data # how the "sendmail" name finds the data directory
step "Mail is submitted"
echo '$ sendmail -t -i < report.txt      # and four more like it'
for who in bob carol dave; do
	printf 'From: Reports <reports@example.com>\nTo: %s@yahoo.example\nCc: alice@example.com\nSubject: weekly report for %s\n\nThe weekly figures.\n' "$who" "$who" |
		sendmail -t -i -f reports@example.com
done
printf 'To: partner@partner.example\nSubject: order 4711\n\nPlease ship.\n' | sendmail -t -i -f orders@example.com
echo
echo '$ printf "Subject: hello\n\nnot a report\n" | sendmail -v -i -f alice@example.com erin@yahoo.example frank@partner.example'
printf 'Subject: hello\n\nnot a report\n' | sendmail -v -i -f alice@example.com erin@yahoo.example frank@partner.example | mask
echo
# Let the first attempts happen.
for _ in $(seq 100); do [ "$(grep -c ' tcp_local Q ' "$data/mail.log" || true)" -ge 4 ] && break; sleep 0.1; done
sleep 0.3

step "1. Check the configuration"
show mtactl -config "$cfg" test -rewrite -debug bob@yahoo.example

step "2. Look at the queue"
show mtactl -data "$data" qm summarize
show mtactl -data "$data" qm summarize -by=domain
show mtactl -data "$data" qm directory -domain=yahoo.example

step "3. Check ownership and modes"
show ls -ld "$data" "$data/queue" "$data/control.sock" "$data/mail.log"

step "4. Check that mtad and its jobs run"
show mtactl -data "$data" process
show mtactl -data "$data" qm jobs -hosts

step "5. Read mail.log"
id=$(grep -m1 ' l tcp_local E .*bob@yahoo.example' "$data/mail.log" | awk '{print $10}')
echo "\$ grep $id /var/mta/data/mail.log"
grep "$id" "$data/mail.log" | mask
echo

step "6. Run the channel by hand"
show mtactl -data "$data" qm run -timeout=10s tcp_local
show mtactl -data "$data" cache -flush

step "7. Stop the channel, hold the stuck messages, start it again"
show mtactl -data "$data" qm stop tcp_local
show mtactl -data "$data" qm summarize -channel=tcp_local
ids=$(mtactl -data "$data" qm directory -json -domain=yahoo.example | grep '"id"' | sed 's/.*"id": "\([^"]*\)".*/\1/' | tr '\n' ' ')
# shellcheck disable=SC2086
show mtactl -data "$data" qm hold $ids
show mtactl -data "$data" qm start tcp_local

step "Meanwhile, the newsletter goes out"
echo '$ for i in $(seq 500); do sendmail -i -f news@example.com reader$i@yahoo.example < newsletter.txt; done'
for i in $(seq 500); do
	printf 'From: news@example.com\nSubject: newsletter-%d\n\nThis week.\n' "$i" | sendmail -i -f news@example.com "reader$i@yahoo.example"
done
echo
# Let tcp_local try them all once: they are deferred like the rest.
for _ in $(seq 300); do [ "$(grep -c ' tcp_local Q .*news@example.com' "$data/mail.log" || true)" -ge 500 ] && break; sleep 0.1; done
show mtactl -data "$data" qm summarize
show mtactl -data "$data" qm summarize -by=domain

step "8. Isolate the destination in its own channel and pool"
cp "$cfg/imta.cnf" "$work/imta.cnf.orig"
cp "$cfg/job_controller.cnf" "$work/job_controller.cnf.orig"
# The rule goes before the catch-all "." rule (rules are tried most specific
# first anyway); the channel before bitbucket.
sed -i "s/^! Everything else goes out to the Internet\.$/! yahoo.example defers us: its own channel, in its own pool.\nyahoo.example           \$U%\$D@tcp_yahoo-daemon\n&/" "$cfg/imta.cnf"
grep -q '^yahoo.example' "$cfg/imta.cnf" || { echo "run.sh: examples/site/imta.cnf changed: update the sed" >&2; exit 1; }
sed -i "s/^bitbucket$/tcp_yahoo smtp nomx single_sys daemon 127.0.0.1 port $port maxjobs 1 pool SMTP_YAHOO \\\\\n backoff \"pt10m\" \"pt30m\" \"pt1h\"\ntcp_yahoo-daemon\n\n&/" "$cfg/imta.cnf"
sed -i 's/^\[POOL=SMTP_SIROE\]$/[POOL=SMTP_YAHOO]\nJOB_LIMIT=1\n&/' "$cfg/job_controller.cnf"
echo '$ diff -u imta.cnf.orig imta.cnf; diff -u job_controller.cnf.orig job_controller.cnf'
{ diff -u "$work/imta.cnf.orig" "$cfg/imta.cnf" | sed '1,2d'; diff -u "$work/job_controller.cnf.orig" "$cfg/job_controller.cnf" | sed '1,2d'; } || true
echo
show mtactl -config "$cfg" cnbuild
show mtactl -data "$data" reload
show mtactl -config "$cfg" test -rewrite bob@yahoo.example
showbulk mtactl -data "$data" qm requeue -n -domain yahoo.example
showbulk mtactl -data "$data" qm requeue -domain yahoo.example
show mtactl -data "$data" qm requeue -held -domain yahoo.example
sleep 0.3 # mail.log is flushed every 100 ms
echo "\$ grep 'bob@yahoo.example' /var/mta/data/mail.log | tail -3"
grep 'bob@yahoo.example' "$data/mail.log" | tail -3 | mask
echo
printf 'Subject: after the change\n\nnew mail\n' | sendmail -i -f reports@example.com gina@yahoo.example
echo '$ echo new mail | sendmail -i -f reports@example.com gina@yahoo.example'
echo
for _ in $(seq 100); do grep -q ' tcp_yahoo Q ' "$data/mail.log" && break; sleep 0.1; done
show mtactl -data "$data" qm summarize
show mtactl -data "$data" process

step "9. Held messages"
show mtactl -data "$data" qm directory -held

step "10. The destination accepts mail again"
touch "$work/yahoo-ok"
show mtactl -data "$data" qm run -timeout=10s tcp_local
showbulk mtactl -data "$data" qm run -timeout=60s tcp_yahoo
show mtactl -data "$data" qm summarize

step "11. Stop mtad"
echo '$ kill -TERM $(pidof mtad)'
kill -TERM "$mtad_pid"
wait "$mtad_pid" || true
mtad_pid=
show mtactl -data "$data" qm summarize
echo "mtad's own log (stderr, -log-level warn):"
mask <"$work/mtad.stderr"
echo
echo "mail.log (the newsletter's lines counted, not shown):"
mask <"$data/mail.log" | awk '/news@example.com/ { n++; next } { print } END { printf "(%d lines for the newsletter)\n", n }'
