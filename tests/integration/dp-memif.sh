#!/bin/sh
# dp-memif.sh AGENTWIRE BENCH-PING AW-MKMODEL CONF — two DPDK processes over
# net_memif: the daemon (memif server) and bench-ping's DPDK client. The
# client connects, exchanges PINGs (every one answered, else it fails), and
# exits; a second client connects to the same daemon (reconnect after the
# peer left: the daemon must stop polling the port while it is down — the
# memif PMD of DPDK 22.11 crashes otherwise); then SIGTERM: exit 0 with every
# mbuf back. Root only (EAL runtime directories): exit 77 otherwise.
set -u
aw=$1 bp=$2 mk=$3 conf=$4
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
tmp=$(mktemp -d)
sock=$tmp/memif.sock
trap 'rm -rf "$tmp"' EXIT
"$mk" --out "$tmp/m.gguf" --preset tiny >/dev/null || exit 1
"$aw" -c "$conf" --set "model.path=$tmp/m.gguf" --set "eal.file_prefix=aw-it-memif-$$" \
	--set "port.0.device=net_memif0,role=server,socket=$sock,socket-abstract=no" \
	>"$tmp/aw.log" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "ready:" "$tmp/aw.log" && break; sleep 0.1; done
grep -q "ready:" "$tmp/aw.log" || { cat "$tmp/aw.log"; kill $pid; exit 1; }
fail=0
for round in 1 2; do
	out=$("$bp" dpdk --lcores=0@0 --no-huge -m 512 --no-pci --file-prefix="aw-it-memif-c$$" \
		--vdev="net_memif0,role=client,socket=$sock,socket-abstract=no" --log-level=warning -- \
		--src 10.98.0.1 --dst 10.98.0.2 --port 7878 -n 2000 -w 100 --label "memif-$round" 2>&1)
	echo "$out" | grep "bench-ping:"
	echo "$out" | grep -q "memif-$round rtt n=2000" || { echo "round $round failed: $out"; fail=1; }
	kill -0 $pid 2>/dev/null || { echo "daemon died after client $round"; fail=1; break; }
	sleep 0.5
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
grep "agentwire:" "$tmp/aw.log" | tail -4
[ $rc = 0 ] || { echo "daemon exit $rc"; cat "$tmp/aw.log"; fail=1; }
grep -q "every mbuf returned to its pool" "$tmp/aw.log" || fail=1
grep -q "link down" "$tmp/aw.log" && echo "link down seen and survived"
exit $fail
