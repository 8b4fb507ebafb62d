#!/bin/sh
# bench-ping.sh BUILDDIR [N] — PING round trip (one in flight) over net_memif
# between two DPDK processes, in one run:
#   1. kernel UDP ping-pong over loopback, busy polling (the baseline)
#   2. dpdk-testpmd --forward-mode=5tswap as the memif server (the transport floor)
#   3. the agentwire daemon as the memif server (PING answered on its lcore)
# then the PING rate with 128 in flight against agentwire. The client
# (bench-ping) runs on CPU 0; each server polls on CPU 1. Needs root (EAL
# runtime dirs); prints the figures and the ratios; exits 77 when something
# it needs is missing.
set -eu
build=$(cd "${1:?usage: bench-ping.sh BUILDDIR [N]}" && pwd)
n=${2:-100000}
src=$(cd "$(dirname "$0")" && pwd)
bp=$build/tests/integration/bench-ping
aw=$build/dataplane/agentwire
sock=/tmp/aw-bench-ping.sock
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm -f "$sock"' EXIT
[ "$(id -u)" = 0 ] || { echo "bench-ping.sh: needs root"; exit 77; }
[ -x "$bp" ] && [ -x "$aw" ] || { echo "bench-ping.sh: build first"; exit 77; }
client() { # label [bench-ping options]
	label=$1
	shift
	"$bp" dpdk --lcores=0@0 --no-huge -m 512 --no-pci --file-prefix=aw-bp-client \
		--vdev="net_memif0,role=client,socket=$sock,socket-abstract=no" --log-level=warning -- \
		--src 10.98.0.1 --dst 10.98.0.2 --port 7878 -n "$n" -w $((n / 10)) --label "$label" "$@"
}

echo "== kernel UDP over loopback, busy poll"
"$bp" kernel -n "$n" -w $((n / 10)) | tee "$tmp/kernel"

if command -v dpdk-testpmd >/dev/null; then
	echo "== dpdk-testpmd 5tswap over net_memif"
	rm -f "$sock"
	# testpmd without a terminal runs until its standard input ends: a FIFO
	# we hold open, closed to stop it
	mkfifo "$tmp/in"
	dpdk-testpmd --lcores=0@0,1@1 --main-lcore=0 --no-huge -m 1024 \
		--no-pci --file-prefix=aw-bp-testpmd --log-level=warning \
		--vdev="net_memif0,role=server,socket=$sock,socket-abstract=no" -- \
		--forward-mode=5tswap --auto-start --nb-cores=1 <"$tmp/in" >"$tmp/testpmd.log" 2>&1 &
	tp=$!
	exec 3>"$tmp/in"
	for _ in $(seq 100); do [ -S "$sock" ] && grep -q "Press enter" "$tmp/testpmd.log" && break; sleep 0.1; done
	client testpmd-5tswap-memif | tee "$tmp/testpmd" || true
	echo >&3
	exec 3>&-
	wait $tp 2>/dev/null || true
else
	echo "dpdk-testpmd not installed (Debian package dpdk-dev): no transport floor"
fi

echo "== agentwire over net_memif"
rm -f "$sock"
"$build/tools/aw-mkmodel" --out /tmp/aw-bench-ping.gguf --preset tiny >/dev/null
"$aw" -c "$src/bench-ping.conf" >"$tmp/aw.log" 2>&1 &
awpid=$!
for _ in $(seq 200); do grep -q "ready:" "$tmp/aw.log" && break; sleep 0.1; done
# the client holds the link until the daemon has stopped (memif PMD crash trap)
client agentwire-memif --rate-seconds 3 --hold 60 >"$tmp/agentwire" 2>&1 &
cpid=$!
for _ in $(seq 1200); do grep -q "rate in_flight" "$tmp/agentwire" 2>/dev/null && break
	kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
grep "bench-ping:" "$tmp/agentwire"
kill -TERM $awpid
wait $awpid && echo "agentwire: clean exit" || { echo "agentwire exited $?"; cat "$tmp/aw.log"; }
wait $cpid || true
rm -f /tmp/aw-bench-ping.gguf

p50() { sed -n 's/.*rtt .*p50_us=\([0-9.]*\).*/\1/p' "$1"; }
k=$(p50 "$tmp/kernel"); a=$(p50 "$tmp/agentwire"); t=$(p50 "$tmp/testpmd" 2>/dev/null || true)
echo "== p50 ratios (same run)"
[ -n "$a" ] && [ -n "$k" ] && awk -v a="$a" -v k="$k" 'BEGIN { printf "agentwire / kernel  = %.3f\n", a / k }'
[ -n "$a" ] && [ -n "$t" ] && awk -v a="$a" -v t="$t" 'BEGIN { printf "agentwire / testpmd = %.3f\n", a / t }'
exit 0
