#!/usr/bin/env bash
# tools/demo.sh — the README's first command: set up a fresh Debian 12 machine
# and run agentwire on an embedded default.
#
#   sudo tools/demo.sh
#
# 1. installs the Debian packages (tests/run.sh --deps-only) and builds;
# 2. writes a small model with aw-mkmodel (stories15m shape, Q8_0, seeded
#    random weights and a synthetic vocabulary: the text it produces is
#    gibberish by construction — it shows the machinery, not a trained model);
# 3. runs it offline with aw-infer (greedy text and a speed figure);
# 4. starts the agentwire daemon on a virtual NIC (DPDK net_tap, no
#    hugepages), sends it PINGs and GENERATE requests with the Python client
#    over an ordinary UDP socket, prints the answers and latencies, runs
#    aw-loadgen against it for a few seconds, and stops it with SIGTERM.
# Environment: AW_DEMO_DIR (default /var/tmp/agentwire), AW_SKIP_DEPS=1.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
dir=${AW_DEMO_DIR:-/var/tmp/agentwire}
model=$dir/demo.gguf

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing packages and building"
[ "${AW_SKIP_DEPS:-0}" = 1 ] || bash tests/run.sh --deps-only
[ -f build/build.ninja ] || meson setup build --buildtype=release
ninja -C build

step "writing the demo model ($model)"
mkdir -p "$dir"
build/tools/aw-mkmodel --out "$model" --preset stories15m --type q8_0 --seed 1
build/tools/aw-infer -m "$model" --info | head -n 12

step "offline: aw-infer, greedy"
build/tools/aw-infer -m "$model" -p "Once upon a time" -n 24 --temp 0
echo
build/tools/aw-infer -m "$model" --bench -p 64 -n 32 --reps 1

if [ ! -x build/dataplane/agentwire ]; then
	echo "demo: DPDK was not found at build time: the daemon part is skipped" >&2
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: the daemon needs root (DPDK net_tap): run with sudo for the rest" >&2
	exit 0
fi

step "checking the config (agentwire --check)"
build/dataplane/agentwire --check -c config/examples/demo.conf --set "model.path=$model"

step "starting the daemon on net_tap (aw0, 10.99.0.2:7878)"
log=$dir/agentwire.log
build/dataplane/agentwire -c config/examples/demo.conf --set "model.path=$model" >"$log" 2>&1 &
pid=$!
stop() {
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" || true
	fi
}
trap stop EXIT
for _ in $(seq 1 300); do
	grep -q 'ready:' "$log" && break
	kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "demo: the daemon exited" >&2; exit 1; }
	sleep 0.1
done
grep -q 'ready:' "$log" || { cat "$log"; echo "demo: the daemon did not become ready" >&2; exit 1; }
ip addr replace 10.99.0.1/24 dev aw0
ip link set aw0 up
grep -E 'ready:|kernels|model' "$log" | head -n 5

step "requests with the Python client (tools/python/agentwire.py)"
PYTHONPATH=tools/python python3 - <<'PY'
import time
import agentwire

c = agentwire.Client("10.99.0.2", 7878)
for _ in range(50):             # the first ones also resolve ARP
    c.ping(b"warm-up")
rtts = sorted(c.ping(b"hello") for _ in range(200))
print("PING  p50 %.1f us  p99 %.1f us (kernel UDP socket client over a tap device)"
      % (rtts[100] * 1e6, rtts[198] * 1e6))
for prompt in ["Pick a tool for: weather in Paris?", "Once upon a time"]:
    t0 = time.perf_counter()
    text, summary = c.generate(prompt, max_new_tokens=24, temperature=0.0)
    dt = time.perf_counter() - t0
    print("GENERATE %r -> %r" % (prompt, text))
    print("         %s, %.1f ms end to end" % (summary, dt * 1e3))
PY

step "aw-loadgen: PING at 2000/s for 3 s"
build/tools/aw-loadgen -s 10.99.0.2:7878 -r 2000 -d 3 --warmup 1 --no-progress

step "Prometheus metrics (http://127.0.0.1:9478/metrics, docs/OPERATIONS.md section 9)"
if command -v curl >/dev/null; then
	curl -s http://127.0.0.1:9478/metrics |
		grep -E '^agentwire_(requests_total\{.*(stop|length)|tokens_total|time_to_first_token_seconds_count|request_datagrams_total\{op="ping"\})' |
		grep -v ' 0$' || true
else
	python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9478/metrics").read().decode())' |
		grep -E '^agentwire_(requests_total|tokens_total)' | grep -v ' 0$' || true
fi

step "stopping the daemon"
stop
trap - EXIT
tail -n 3 "$log"
echo "demo: done (daemon log: $log)"
