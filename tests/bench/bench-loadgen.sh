#!/bin/sh
# bench-loadgen.sh BUILD_DIR [SECONDS] — aw-loadgen's own overhead against
# aw-echod over kernel UDP loopback, every figure measured in the same run:
#   1. latency: bench-pingpong (blocking send/recv, one in flight: the
#      plainest possible client) vs aw-loadgen closed loop with 1 agent;
#      the difference is what aw-loadgen's machinery adds per request;
#   2. the largest PING rate aw-loadgen sustains open-loop (Poisson) with
#      >= 99 % of the offered rate answered and no errors.
# The machine is shared and noisy: read ratios, not absolute numbers.
set -eu
build=${1:?usage: bench-loadgen.sh BUILD_DIR [SECONDS]}
secs=${2:-3}
echod="$build/tools/aw-echod"
lg="$build/tools/aw-loadgen"
pp="$build/tests/bench/bench-pingpong"
for x in "$echod" "$lg" "$pp"; do
	[ -x "$x" ] || { echo "bench-loadgen: $x missing (build first)" >&2; exit 77; }
done
port=$((20000 + $$ % 20000))
# AW_BENCH_PIN=1: server and client on different CPUs (helps on an idle
# machine; on a shared, loaded one it makes both wait for their one CPU)
pin_srv= pin_cli=
if [ "${AW_BENCH_PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_srv="taskset -c 1"
	pin_cli="taskset -c 0"
fi
$pin_srv "$echod" --port "$port" >/dev/null &
epid=$!
trap 'kill $epid 2>/dev/null || true' EXIT INT TERM
sleep 0.3

n=$((secs * 10000))
uptime
echo "== latency, one request in flight, 64-byte PING (us)"
$pin_cli "$pp" 127.0.0.1 "$port" 2000 >/dev/null # warm-up
$pin_cli "$pp" 127.0.0.1 "$port" "$n"
$pin_cli "$lg" -s 127.0.0.1:$port -a 1 -d "$secs" --warmup 0.5 --no-progress --json |
	python3 -c 'import json,sys; d=json.load(sys.stdin)["ops"]["ping"]; e=d["e2e_us"]
print("aw-loadgen -a 1 n=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f rate_per_s=%.0f" % (e["count"], e["p50"], e["p90"], e["p99"], e["max"], d["ok_per_s"]))'

echo "== open-loop PING rate sweep (Poisson), $secs s each"
$pin_cli "$lg" -s 127.0.0.1:$port --sweep 5000,10000,20000,40000,80000,120000,160000 -d "$secs" \
	--warmup 0.5 --no-progress --csv "${TMPDIR:-/tmp}/bench-loadgen.csv" --plot "${TMPDIR:-/tmp}/bench-loadgen.png"
python3 - "${TMPDIR:-/tmp}/bench-loadgen.csv" <<'PY'
import csv, sys
best = None
for r in csv.DictReader(open(sys.argv[1])):
    off, ok, err = float(r["offered_per_s"]), float(r["ok_per_s"]), int(r["errors"])
    if err == 0 and ok >= 0.99 * off * 0.97:  # Poisson: +-3 % sampling noise on the count
        best = (off, ok, r["p99_us"])
print("max sustained: %s" % ("none" if best is None else
      "offered %.0f/s, answered %.0f/s, p99 %s us" % best))
PY
