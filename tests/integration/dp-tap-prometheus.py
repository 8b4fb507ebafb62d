#!/usr/bin/env python3
"""dp-tap-prometheus — the daemon's /metrics under a real Prometheus server.

Starts the daemon on net_tap (its own tap awm0, 10.93.0.0/24) with the
metrics endpoint on a free localhost port, checks the exposition with
promtool, starts Debian's prometheus scraping it every second, runs
aw-loadgen (GENERATE, open loop) while a flood of /metrics requests and a
few slow scrapers that never finish their request hit the endpoint, then
reads the series back through Prometheus's HTTP query API and compares them
with the load generator's own counts:

    requests that ended (every outcome)  == requests aw-loadgen sent
    requests that ended stop|length      == requests aw-loadgen counted ok
    TTFT / duration histogram counts     == those requests
    generated tokens                     >= ok requests (one token at least)

and that the load generator saw no error while the endpoint was flooded.

    dp-tap-prometheus.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER AW-LOADGEN
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import awtest as aw

aw.TAP_IF, aw.HOST_IP, aw.SRV_IP = 'awm0', '10.93.0.1', '10.93.0.2'
if len(sys.argv) < 6:
    aw.skip('usage: dp-tap-prometheus.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER AW-LOADGEN')
loadgen = sys.argv[5]
exe, conf = aw.need_root_and_build(sys.argv)
prom_exe = shutil.which('prometheus')
promtool = shutil.which('promtool')
if not prom_exe or not promtool:
    aw.skip("no prometheus/promtool (Debian package 'prometheus')")


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get('Content-Type', ''), r.read()


def query(api, expr):
    """One instant query; the value of its single series (0 when empty)."""
    url = api + '/api/v1/query?' + urllib.parse.urlencode({'query': expr})
    _, _, body = get(url)
    d = json.loads(body)
    assert d['status'] == 'success', d
    res = d['data']['result']
    assert len(res) <= 1, (expr, res)
    return float(res[0]['value'][1]) if res else 0.0


mport, pport = free_port(), free_port()
metrics = 'http://127.0.0.1:%d/metrics' % mport
model = aw.model_file()
tmp = tempfile.mkdtemp(prefix='aw-prom-')
d = aw.Daemon(exe, conf, sets=['model.path=' + model,
                               'port.0.device=net_tap0,iface=' + aw.TAP_IF,
                               'port.0.address=%s/24' % aw.SRV_IP,
                               'telemetry.metrics_port=%d' % mport])
prom = None
ok = False
try:
    # --- the endpoint itself -------------------------------------------------------
    st, ctype, body = get(metrics)
    assert st == 200 and ctype.startswith('text/plain; version=0.0.4'), (st, ctype)
    text = body.decode()
    for fam in ('agentwire_requests_total', 'agentwire_packet_drops_total',
                'agentwire_time_to_first_token_seconds', 'agentwire_queue_depth',
                'agentwire_kv_blocks', 'agentwire_batch_tokens'):
        assert '# TYPE %s ' % fam in text, fam
    chk = subprocess.run([promtool, 'check', 'metrics'], input=body, capture_output=True)
    assert chk.returncode == 0, chk.stdout.decode() + chk.stderr.decode()
    for path, want in (('/', 404), ('/metrics/x', 404)):
        try:
            get('http://127.0.0.1:%d%s' % (mport, path))
            raise AssertionError('%s answered 200' % path)
        except urllib.error.HTTPError as e:
            assert e.code == want, (path, e.code)
    try:
        urllib.request.urlopen(urllib.request.Request(metrics, data=b'x', method='POST'),
                               timeout=5)
        raise AssertionError('POST answered 200')
    except urllib.error.HTTPError as e:
        assert e.code == 405, e.code

    # --- Prometheus scraping it ------------------------------------------------------
    with open(os.path.join(tmp, 'prometheus.yml'), 'w') as f:
        f.write('global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n'
                'scrape_configs:\n  - job_name: agentwire\n    static_configs:\n'
                "      - targets: ['127.0.0.1:%d']\n" % mport)
    plog = open(os.path.join(tmp, 'prometheus.log'), 'w')
    prom = subprocess.Popen([prom_exe, '--config.file=' + os.path.join(tmp, 'prometheus.yml'),
                             '--storage.tsdb.path=' + os.path.join(tmp, 'data'),
                             '--web.listen-address=127.0.0.1:%d' % pport],
                            stdout=plog, stderr=subprocess.STDOUT)
    api = 'http://127.0.0.1:%d' % pport
    t0 = time.time()
    while time.time() - t0 < 60:
        try:
            if query(api, 'up{job="agentwire"}') == 1.0:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    else:
        raise AssertionError('prometheus never scraped the daemon:\n' +
                             open(os.path.join(tmp, 'prometheus.log')).read()[-2000:])

    # --- load, while /metrics is flooded and slow scrapers hold connections ---------
    stop = threading.Event()
    flood = {'ok': 0, 'refused': 0}

    def flooder():
        while not stop.is_set():
            try:
                get(metrics, timeout=5)
                flood['ok'] += 1
            except OSError:
                flood['refused'] += 1  # connection limit reached: expected under a flood

    slow = []
    for _ in range(6):  # half a request line each, never finished
        s = socket.create_connection(('127.0.0.1', mport))
        s.sendall(b'GET /metr')
        slow.append(s)
    threads = [threading.Thread(target=flooder) for _ in range(4)]
    for t in threads:
        t.start()
    wl = os.path.join(tmp, 'gen.wl')
    with open(wl, 'w') as f:
        f.write('mix = generate:1\nprompt_tokens = uniform:4:24\nmax_new_tokens = fixed:6\n')
    lg = subprocess.run([loadgen, '-s', '%s:%d' % (aw.SRV_IP, aw.PORT), '-w', wl, '-r', '25',
                         '-d', '4', '--warmup', '0', '--timeout-ms', '20000', '--json',
                         '--no-progress'], capture_output=True, timeout=120)
    stop.set()
    for t in threads:
        t.join()
    for s in slow:
        s.close()
    assert lg.returncode == 0, lg.stderr.decode()
    res = json.loads(lg.stdout)['ops']['generate']
    sent, okn, err = res['sent'], res['ok'], res['err']
    print('aw-loadgen: sent %d ok %d err %d; /metrics flood: %d answered, %d refused'
          % (sent, okn, err, flood['ok'], flood['refused']))
    assert sent > 20 and err == 0, res
    assert flood['ok'] > 0, flood

    # --- what Prometheus stored equals what the load generator counted ---------------
    def settled(expr, want, what):
        t0 = time.time()
        while time.time() - t0 < 30:
            v = query(api, expr)
            if v == want:
                print('prometheus: %s = %g (aw-loadgen: %g)' % (what, v, want))
                return
            time.sleep(1)
        raise AssertionError('%s: prometheus says %g, aw-loadgen %g' % (what, v, want))

    settled('sum(agentwire_requests_total{op="generate"})', sent, 'requests ended')
    settled('sum(agentwire_requests_total{op="generate",outcome=~"stop|length"})', okn,
            'requests ok')
    settled('sum(agentwire_request_duration_seconds_count)', sent, 'duration observations')
    settled('sum(agentwire_time_to_first_token_seconds_count)', okn, 'TTFT observations')
    settled('sum(agentwire_requests_dispatched_total)', sent, 'requests dispatched')
    gen_tokens = query(api, 'sum(agentwire_tokens_total{kind="generated"})')
    assert okn <= gen_tokens <= 6 * okn, (gen_tokens, okn)
    assert query(api, 'sum(agentwire_requests_rejected_total)') == 0
    # the scheduler's side: forward passes observed, a KV pool, prompt tokens looked up
    steps = query(api, 'sum(agentwire_batch_tokens_count)')
    positions = query(api, 'sum(agentwire_batch_tokens_sum)')
    prompt = query(api, 'sum(agentwire_tokens_total{kind="prompt"})')
    assert steps > 0 and positions >= prompt + gen_tokens - okn, (steps, positions, prompt)
    assert query(api, 'sum(agentwire_kv_blocks)') > 0
    assert query(api, 'sum(agentwire_prefix_cache_lookup_tokens_total)') == prompt
    print('prometheus: %d forward passes, %d positions, mean batch %.1f tokens'
          % (steps, positions, positions / steps))
    p99 = query(api, 'histogram_quantile(0.99, sum by (le) '
                     '(agentwire_request_duration_seconds_bucket))')
    assert 0 < p99 < 60, p99
    print('prometheus: p99 request duration %.3f s (histogram_quantile)' % p99)
    ok = True
finally:
    if prom:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
    rc = d.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print(d.output()[-3000:])

# --- the metrics port already taken: the daemon refuses to start and names the key ------
taken = socket.socket()
taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a second daemon would
taken.bind(('127.0.0.1', 0))
taken.listen(1)
busy = taken.getsockname()[1]
try:
    d2 = aw.Daemon(exe, conf, sets=['model.path=' + model,
                                    'port.0.device=net_tap0,iface=' + aw.TAP_IF,
                                    'port.0.address=%s/24' % aw.SRV_IP,
                                    'telemetry.metrics_port=%d' % busy],
                   prefix='aw-it-%d-busy' % os.getpid())
    d2.stop()
    raise AssertionError('daemon started although metrics port %d was taken' % busy)
except RuntimeError as e:
    msg = str(e)
    assert msg.startswith('daemon exited') and 'exited 0' not in msg, msg
    assert 'metrics_port' in msg and ('%d' % busy) in msg, msg
    print('port %d taken: daemon refused to start, naming telemetry.metrics_port' % busy)
finally:
    taken.close()
print('dp-tap-prometheus: ok')
