#!/bin/sh
# bench-loadgen-vs-llama.sh BUILD_DIR MODEL.gguf [LLAMA_SERVER] — agentwire
# against llama.cpp's llama-server under the same open-loop workload, both
# driven by aw-loadgen (same scheduler, same statistics; docs/LOADGEN.md):
# agentwire over its UDP protocol on a net_tap port, llama-server over
# HTTP/1.1 (--transport http, streamed /completion). Same model file, same
# CPUs (agentwire: worker group on CPU 0, dataplane lcore on CPU 1 as in
# tests/integration/dp-tap.conf; llama-server: taskset to CPUs 0,1 with one
# compute thread). Both servers run for the whole benchmark and the rate
# points alternate between them, so drift in the shared machine's load hits
# both alike. Prints one row per rate and the highest rate each sustains
# (no errors, >= 90 % of the offered rate answered, TTFT p99 within the SLO).
#
# Environment: AW_RATES (default 2,4,8,16 requests/s), AW_SECS (measured
# seconds per point, default 8), AW_WL (workload, default
# tests/bench/agents-prefix-ctx256.wl, fits stories15m's 256-token context),
# AW_SLO_MS (TTFT p99 objective, default 250), AW_NP (llama-server slots and
# agentwire max batch, default 16), AW_OUT (directory for the JSON, default a
# temporary one).
# Without LLAMA_SERVER (or when it is not executable) only agentwire runs.
# Needs root and /dev/net/tun (net_tap): exit 77 otherwise.
set -eu
build=${1:?usage: bench-loadgen-vs-llama.sh BUILD_DIR MODEL.gguf [LLAMA_SERVER]}
model=${2:?usage: bench-loadgen-vs-llama.sh BUILD_DIR MODEL.gguf [LLAMA_SERVER]}
peer=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
rates=${AW_RATES:-2,4,8,16}
secs=${AW_SECS:-8}
wl=${AW_WL:-$here/agents-prefix-ctx256.wl}
slo=${AW_SLO_MS:-250}
np=${AW_NP:-16}
aw="$build/dataplane/agentwire"
lg="$build/tools/aw-loadgen"
# our own tap and subnet (others' benchmarks use aw0, awb0, ...)
tap=awh0 host_ip=10.91.0.1 srv_ip=10.91.0.2
lport=$((18500 + $$ % 400))

[ "$(id -u)" = 0 ] && [ -c /dev/net/tun ] || { echo "SKIP: needs root and /dev/net/tun"; exit 77; }
for x in "$aw" "$lg" "$model" "$wl"; do
	[ -e "$x" ] || { echo "bench-loadgen-vs-llama: $x missing" >&2; exit 77; }
done
if [ -n "$peer" ] && [ ! -x "$peer" ]; then
	echo "llama-server '$peer' not executable: comparison skipped"
	peer=
fi
out=${AW_OUT:-$(mktemp -d)}
mkdir -p "$out"
apid= lpid=
cleanup() {
	[ -n "$apid" ] && kill "$apid" 2>/dev/null && wait "$apid" 2>/dev/null
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
	true
}
trap cleanup EXIT INT TERM

"$aw" -c "$here/../integration/dp-tap.conf" --set eal.file_prefix=awh$$ \
	--set model.path="$model" --set port.0.device=net_tap0,iface=$tap \
	--set port.0.address=$srv_ip/24 --set group.0.max_batch="$np" \
	--set group.0.kv_cache=512M --set limits.queue_depth=256 \
	--set limits.max_new_tokens=1024 --set dataplane.idle=sleep --set group.0.idle=sleep \
	--set log.level=notice >"$out/agentwire.log" 2>&1 &
apid=$!
i=0
until grep -q 'ready:' "$out/agentwire.log"; do
	kill -0 "$apid" 2>/dev/null || { cat "$out/agentwire.log" >&2; exit 1; }
	i=$((i + 1)); [ $i -lt 600 ] || { echo "agentwire not ready" >&2; exit 1; }
	sleep 0.2
done
ip addr replace $host_ip/24 dev $tap
ip link set $tap up
sysctl -q -w net.ipv6.conf.$tap.disable_ipv6=1 || true
sleep 0.5

if [ -n "$peer" ]; then
	# slots x the model's context: no request is refused for length
	taskset -c 0,1 "$peer" -m "$model" --host 127.0.0.1 --port $lport -t 1 -tb 1 \
		-np "$np" -c $((np * 256)) -cb --no-webui >"$out/llama-server.log" 2>&1 &
	lpid=$!
	i=0
	until python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$lport/health', timeout=1)" 2>/dev/null; do
		kill -0 "$lpid" 2>/dev/null || { tail "$out/llama-server.log" >&2; exit 1; }
		i=$((i + 1)); [ $i -lt 300 ] || { echo "llama-server not ready" >&2; exit 1; }
		sleep 0.3
	done
fi

uptime
echo "model $model, workload $wl, $secs s per point after 1 s warm-up, Poisson arrivals"
common="-w $wl -d $secs --warmup 1 --timeout-ms 20000 --max-inflight 1024 --json --no-progress"
# warm both (page cache, prompt caches): 3 s at the lowest rate, not recorded
first=${rates%%,*}
"$lg" -s $srv_ip:7878 $common -r "$first" -d 3 >/dev/null
[ -z "$peer" ] || "$lg" --transport http -s 127.0.0.1:$lport $common -r "$first" -d 3 >/dev/null
for r in $(echo "$rates" | tr , ' '); do
	echo "rate $r: agentwire" >&2
	"$lg" -s $srv_ip:7878 $common -r "$r" >"$out/aw-$r.json"
	if [ -n "$peer" ]; then
		echo "rate $r: llama-server" >&2
		"$lg" --transport http -s 127.0.0.1:$lport $common -r "$r" >"$out/llama-$r.json"
	fi
done
uptime
python3 - "$out" "$rates" "$slo" <<'PY'
import json, os, sys
out, rates, slo = sys.argv[1], [r for r in sys.argv[2].split(',')], float(sys.argv[3])

def load(name, r):
    p = os.path.join(out, '%s-%s.json' % (name, r))
    if not os.path.exists(p):
        return None
    g = json.load(open(p))['ops'].get('generate')
    return g

def cols(g):
    if not g:
        return '%8s %5s %8s %8s %9s %7s' % ('-', '-', '-', '-', '-', '-')
    t, e = g['ttft_us'], g['e2e_us']
    n = g['ok'] + g['err']
    tok = (g['ttft_us']['count'] + g['itl_us']['count']) / n if n else 0
    return '%8.2f %5d %8.1f %8.1f %9.1f %7.1f' % (g['ok_per_s'], g['err'], t['p50'] / 1e3,
                                                   t['p99'] / 1e3, e['p99'] / 1e3, tok)

h = '%8s %5s %8s %8s %9s %7s' % ('ok/s', 'err', 'TTFTp50', 'TTFTp99', 'e2e p99', 'tok/req')
print('%8s | %-50s | %-50s | %s' % ('', 'agentwire (UDP)', 'llama-server (HTTP)', 'TTFT p99'))
print('%8s | %s | %s | %s' % ('offered', h, h, 'aw/llama'))
best = {'aw': None, 'llama': None}
lenient = {'aw': None, 'llama': None}
kinds = {'aw': {}, 'llama': {}}
for r in rates:
    a, l = load('aw', r), load('llama', r)
    ratio = '%8.2f' % (a['ttft_us']['p99'] / l['ttft_us']['p99']) if a and l and a['ok'] and l['ok'] and l['ttft_us']['p99'] else '-'
    print('%8s | %s | %s | %s' % (r, cols(a), cols(l), ratio))
    for k, g in (('aw', a), ('llama', l)):
        if not g:
            continue
        for e, n in g['errors'].items():
            kinds[k][e] = kinds[k].get(e, 0) + n
        fast = g['ttft_us']['p99'] <= slo * 1e3
        if g['err'] == 0 and g['ok_per_s'] >= 0.9 * float(r) and fast:
            best[k] = (float(r), g['ttft_us']['p99'] / 1e3)
        # lenient: a stream that ended in an error event still streamed its
        # tokens (llama-server refuses some random-weight outputs at the end)
        se = g['errors'].get('stream_error', 0)
        if g['err'] == se and (g['ok'] + se) / g['ok'] * g['ok_per_s'] >= 0.9 * float(r) and fast if g['ok'] else False:
            lenient[k] = (float(r), g['ttft_us']['p99'] / 1e3)
print('(ms; tok/req = output chunks per request, errored ones included; rates in requests/s)')
for k, n in (('aw', 'agentwire'), ('llama', 'llama-server')):
    print('%-12s errors by kind over the sweep: %s' % (n, kinds[k] or 'none'))
for name, b in (('strict (no errors)', best), ('stream_error counted as served', lenient)):
    print('highest sustained rate with TTFT p99 <= %.0f ms, %s:' % (slo, name))
    for k, n in (('aw', 'agentwire'), ('llama', 'llama-server')):
        print('  %-12s %s' % (n, 'none' if not b[k] else '%g/s (TTFT p99 %.1f ms)' % b[k]))
    if b['aw'] and b['llama']:
        print('  rate ratio agentwire/llama-server: %.2f' % (b['aw'][0] / b['llama'][0]))
PY
echo "JSON per point in $out"
