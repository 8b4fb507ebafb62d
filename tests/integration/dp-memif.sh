#!/bin/sh
# dp-memif.sh AGENTWIRE BENCH-PING AW-MKMODEL CONF — two DPDK processes over
# net_memif: the daemon (memif server) and bench-ping's DPDK client. The
# client connects after the daemon is ready, exchanges 2000 PINGs (each must
# be answered) and stays connected (--hold); the daemon is stopped first
# (SIGTERM: exit 0, every mbuf back), then the client sees the link go down
# and exits. The order matters: DPDK 22.11's memif PMD frees a port's shared
# memory when its peer disconnects without synchronising with rx/tx bursts,
# so a server that polls while its client leaves can crash (see
# docs/ARCHITECTURE.md); the daemon narrows the window (link checked every
# 10 ms) but cannot close it. Root only (EAL runtime directories): exit 77.
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
"$bp" dpdk --lcores=0@0 --no-huge -m 512 --no-pci --file-prefix="aw-it-memif-c$$" \
	--vdev="net_memif0,role=client,socket=$sock,socket-abstract=no" --log-level=warning -- \
	--src 10.98.0.1 --dst 10.98.0.2 --port 7878 -n 2000 -w 100 --label memif --hold 60 \
	>"$tmp/client.log" 2>&1 &
cpid=$!
for _ in $(seq 600); do grep -q "rtt n=" "$tmp/client.log" && break
	kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
grep "bench-ping:" "$tmp/client.log"
grep -q "memif rtt n=2000" "$tmp/client.log" || { echo "client failed:"; cat "$tmp/client.log"; fail=1; }
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
wait $cpid || { echo "client exit $?"; fail=1; }
grep "agentwire:" "$tmp/aw.log" | tail -3
[ $rc = 0 ] || { echo "daemon exit $rc"; cat "$tmp/aw.log"; fail=1; }
grep -q "every mbuf returned to its pool" "$tmp/aw.log" || fail=1
exit $fail
