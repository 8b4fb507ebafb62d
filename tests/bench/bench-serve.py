#!/usr/bin/env python3
"""bench-serve.py — agentwire against llama.cpp's llama-server, end to end,
with one workload driver for both (standard library only).

The same closed-loop workload goes to both servers, one after the other, on
the same GGUF file: C agents each send a greedy completion request, wait for
its last token, and send the next one, for SECONDS after a warm-up second.
Prompts are distinct random words (no prompt shares a prefix with another,
so neither server's prompt cache helps), or, with --shared-prefix-words W,
all start with the same W-word "system prompt". Per request the driver
records the time to the first token (TTFT), the mean gap between tokens
after the first (per-token latency) and the tokens received; per
concurrency it prints requests/s, generated tokens/s, p50/p99 TTFT and
p50/p99 per-token latency.

agentwire: the real daemon on a net_tap port (its own tap awb0,
10.96.0.0/24), one worker group; the driver speaks the UDP wire protocol
(docs/PROTOCOL.md) over a kernel socket, DATA datagram = token(s).
llama-server: HTTP/1.1 POST /completion with "stream": true over loopback
TCP (server-sent events, one per token), --parallel = the largest
concurrency, continuous batching on.

Usage (root, for the tap):
    tests/bench/bench-serve.py --build build --llama-server /tmp/peer/llama.cpp/build/bin/llama-server
        [--model F.gguf | --preset stories110m --type q8_0] [--conc 1,4,16]
        [--seconds 8] [--max-new 32] [--prompt-words 48] [--threads 1] [--json OUT]
Without --llama-server (or when it is missing) only agentwire is measured.
Exit 77 when not root or /dev/net/tun is missing.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tools', 'python'))
import agentwire as awp  # noqa: E402

TAP, HOST_IP, SRV_IP, PORT = 'awb0', '10.96.0.1', '10.96.0.2', 7878

WORDS = ('agent tool call route ticket weather json schema answer plan search fetch summarize '
         'classify label reply order refund invoice flight hotel meeting calendar email '
         'draft review code test deploy metric alert user account password reset billing '
         'status report table query filter sort price stock news sport music movie book').split()


def pct(v, q):
    if not v:
        return float('nan')
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def cpu_s(pid, thread=None):
    """CPU seconds (user + system) the process (or its thread named
    'thread') has used so far."""
    path = '/proc/%d/stat' % pid
    if thread:
        for t in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/comm' % (pid, t)) as f:
                if f.read().strip() == thread:
                    path = '/proc/%d/task/%s/stat' % (pid, t)
                    break
        else:
            return 0.0
    with open(path) as f:
        v = f.read().rsplit(')', 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf('SC_CLK_TCK')


# agentwire's group leader is EAL lcore 2 with tests/integration/dp-tap.conf
AW_LEADER = 'rte-worker-2'


class Prompts:
    """Prompt i of a run: random words seeded by i (after the shared prefix,
    if any). Each server has its own feed and never sees a prompt twice, so
    a prompt cache only helps through the shared prefix."""

    def __init__(self, words, prefix_words, seed=1):
        rnd = random.Random(seed)
        self.prefix = ' '.join(rnd.choice(WORDS) for _ in range(prefix_words))
        self.words, self.i = words, 0

    def __call__(self):
        self.i += 1
        rnd = random.Random(self.i * 7919)
        body = ' '.join(rnd.choice(WORDS) for _ in range(self.words)) + ' %d' % self.i
        return ((self.prefix + ' ') if self.prefix else '') + body


# --- agentwire: the UDP wire protocol ---------------------------------------------------

class AwProto(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiting = {}

    def datagram_received(self, data, addr):
        try:
            h, payload = awp.parse_header(data)
        except ValueError:
            return
        q = self.waiting.get(h['request_id'])
        if q:
            q.put_nowait((time.perf_counter(), h, payload))


async def aw_request(tr, proto, rid, prompt, max_new, timeout=30.0):
    q = asyncio.Queue()
    proto.waiting[rid] = q
    body = awp.request_body(prompt, max_new_tokens=max_new, temperature=0.0)
    t0 = time.perf_counter()
    for d in awp.segments(awp.GENERATE, rid, body, 1400):
        tr.sendto(d)
    first, last, ntok, got = None, None, 0, {}
    try:
        while True:
            t, h, payload = await asyncio.wait_for(q.get(), timeout)
            got[h['seq']] = 1
            if h['type'] == awp.DATA:
                n = struct.unpack_from('<I', payload)[0]
                if n and first is None:
                    first = t
                ntok += n
                last = t
            elif h['type'] == awp.END:
                if len(got) != h['seq'] + 1:
                    return None  # a datagram was lost: not counted
                s = struct.unpack_from('<BBHII', payload)
                if s[0] not in (0, 1):
                    return None
                tr.sendto(awp.build(awp.ACK, rid))
                return (t0, first, last or t, ntok)
            elif h['type'] == awp.ERROR:
                return None
    except asyncio.TimeoutError:
        return None
    finally:
        del proto.waiting[rid]


async def run_agentwire(conc, seconds, prompts, max_new):
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(AwProto, local_addr=(HOST_IP, 0),
                                                    remote_addr=(SRV_IP, PORT))
    sock = tr.get_extra_info('socket')
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rid = [random.getrandbits(40)]

    async def one(i):
        rid[0] += 1
        return await aw_request(tr, proto, rid[0], prompts(), max_new)
    try:
        return await closed_loop(conc, seconds, one)
    finally:
        tr.close()


# --- llama-server: HTTP/1.1 + server-sent events ------------------------------------------

async def http_request(port, prompt, max_new, timeout=60.0):
    body = json.dumps({'prompt': prompt, 'n_predict': max_new, 'temperature': 0.0,
                       'stream': True, 'cache_prompt': True}).encode()
    t0 = time.perf_counter()
    r, w = await asyncio.open_connection('127.0.0.1', port)
    w.write(b'POST /completion HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
            b'Connection: close\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
    await w.drain()
    first, last, ntok, predicted = None, None, 0, None
    try:
        status = await asyncio.wait_for(r.readline(), timeout)
        if b' 200 ' not in status:
            return None
        chunked = False
        while True:
            line = await asyncio.wait_for(r.readline(), timeout)
            if line in (b'\r\n', b''):
                break
            if line.lower().startswith(b'transfer-encoding:') and b'chunked' in line.lower():
                chunked = True
        buf = b''
        while True:
            if chunked:
                size = int((await asyncio.wait_for(r.readline(), timeout)).strip() or b'0', 16)
                if size == 0:
                    break
                data = await asyncio.wait_for(r.readexactly(size + 2), timeout)
                data = data[:-2]
            else:
                data = await asyncio.wait_for(r.read(65536), timeout)
                if not data:
                    break
            now = time.perf_counter()
            buf += data
            while b'\n\n' in buf:
                ev, buf = buf.split(b'\n\n', 1)
                for ln in ev.split(b'\n'):
                    if not ln.startswith(b'data: '):
                        continue
                    try:
                        j = json.loads(ln[6:])
                    except ValueError:
                        continue
                    if j.get('stop'):
                        predicted = j.get('tokens_predicted')
                    else:
                        ntok += 1
                        if first is None:
                            first = now
                        last = now
            if predicted is not None:
                break
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None
    finally:
        w.close()
    if first is None:
        return None
    return (t0, first, last, predicted if predicted is not None else ntok)


async def run_llama(conc, seconds, prompts, max_new, port):
    async def one(i):
        return await http_request(port, prompts(), max_new)
    return await closed_loop(conc, seconds, one)


# --- the closed loop ------------------------------------------------------------------------

async def closed_loop(conc, seconds, one, warmup=0.5):
    """Run C agents for warmup + seconds; returns the records of the
    requests that finished in the measured window (after the warm-up; a
    request may have started before it), and the number of failed
    requests. Agents stop sending at the window's end and the last answers
    are awaited (not counted)."""
    start = time.perf_counter()
    t_meas, t_end = start + warmup, start + warmup + seconds
    res, errors, counter = [], [0], [0]

    async def agent():
        while time.perf_counter() < t_end:
            counter[0] += 1
            r = await one(counter[0])
            if r is None:
                errors[0] += 1
                continue
            if t_meas <= r[2] <= t_end:
                res.append(r)
    await asyncio.gather(*(agent() for _ in range(conc)))
    return res, errors[0]


def summarize(conc, seconds, res, errors):
    ttft = [(f - s) * 1e3 for s, f, e, n in res]
    itl = [(e - f) / (n - 1) * 1e3 for s, f, e, n in res if n > 1]
    toks = sum(n for s, f, e, n in res)
    return {'conc': conc, 'seconds': seconds, 'requests': len(res), 'errors': errors,
            'req_per_s': len(res) / seconds, 'tok_per_s': toks / seconds,
            'tokens_per_req': toks / max(len(res), 1),
            'ttft_p50_ms': pct(ttft, 0.5), 'ttft_p99_ms': pct(ttft, 0.99),
            'itl_p50_ms': pct(itl, 0.5), 'itl_p99_ms': pct(itl, 0.99)}


# --- servers --------------------------------------------------------------------------------

def start_agentwire(build, model, conc, threads, sets, log):
    conf = os.path.join(HERE, '..', 'integration', 'dp-tap.conf')
    prefix = 'aw-bench-%d' % os.getpid()
    args = [os.path.join(build, 'dataplane', 'agentwire'), '-c', conf,
            '--set', 'eal.file_prefix=' + prefix, '--set', 'model.path=' + model,
            '--set', 'port.0.device=net_tap0,iface=' + TAP,
            '--set', 'port.0.address=%s/24' % SRV_IP,
            '--set', 'group.0.max_batch=%d' % max(conc, 1),
            '--set', 'group.0.kv_cache=512M', '--set', 'limits.queue_depth=256',
            '--set', 'limits.max_new_tokens=1024', '--set', 'log.level=notice']
    for x in sets:
        args += ['--set', x]
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError('agentwire exited %d (log %s)' % (p.returncode, log.name))
        with open(log.name) as f:
            if 'ready:' in f.read():
                break
        time.sleep(0.2)
    subprocess.run(['ip', 'addr', 'replace', HOST_IP + '/24', 'dev', TAP], check=True)
    subprocess.run(['ip', 'link', 'set', TAP, 'up'], check=True)
    subprocess.run(['sysctl', '-q', '-w', 'net.ipv6.conf.%s.disable_ipv6=1' % TAP], check=False)
    time.sleep(0.5)
    return p


def start_llama(exe, model, conc, threads, ctx_per_slot, cpus, log):
    port = 18000 + os.getpid() % 1000
    args = (['taskset', '-c', cpus] if cpus else []) + [
        exe, '-m', model, '--host', '127.0.0.1', '--port', str(port), '-t', str(threads),
        '-tb', str(threads), '-np', str(conc), '-c', str(ctx_per_slot * conc), '-cb',
        '--no-webui']
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError('llama-server exited %d (log %s)' % (p.returncode, log.name))
        try:
            with socket.create_connection(('127.0.0.1', port), 1) as s:
                s.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
                if b' 200 ' in s.recv(4096):
                    return p, port
        except OSError:
            pass
        time.sleep(0.3)
    p.kill()
    raise RuntimeError('llama-server not ready (log %s)' % log.name)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def row(name, r):
    return ('%-12s %4d %8.1f %9.1f %7.1f %9.2f %9.2f %8.3f %8.3f %5d %9.1f %9s' %
            (name, r['conc'], r['req_per_s'], r['tok_per_s'], r['tokens_per_req'],
             r['ttft_p50_ms'], r['ttft_p99_ms'], r['itl_p50_ms'], r['itl_p99_ms'], r['errors'],
             r['tok_per_cpu_s'],
             '%.1f' % r['tok_per_leader_cpu_s'] if 'tok_per_leader_cpu_s' in r else '-'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', required=True)
    ap.add_argument('--llama-server')
    ap.add_argument('--model')
    ap.add_argument('--preset', default='stories110m')
    ap.add_argument('--type', default='q8_0')
    ap.add_argument('--conc', default='1,4,16')
    ap.add_argument('--seconds', type=float, default=12,
                    help='measured seconds per server and concurrency')
    ap.add_argument('--rounds', type=int, default=3,
                    help='alternating windows the seconds are split into')
    ap.add_argument('--max-new', type=int, default=32)
    ap.add_argument('--prompt-words', type=int, default=48)
    ap.add_argument('--shared-prefix-words', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1,
                    help='compute threads of llama-server (agentwire: its group has one CPU)')
    ap.add_argument('--llama-cpus', default='0,1',
                    help="taskset CPU list for llama-server ('' = none): the same two CPUs "
                    "agentwire has (dp-tap.conf: group on CPU 0, dataplane lcore on CPU 1)")
    ap.add_argument('--aw-set', action='append', default=[],
                    help='extra agentwire --set SECTION.KEY=VALUE (repeatable)')
    ap.add_argument('--json')
    a = ap.parse_args()
    if os.geteuid() != 0 or not os.path.exists('/dev/net/tun'):
        print('SKIP: needs root and /dev/net/tun (net_tap)')
        sys.exit(77)
    try:
        concs = [int(x) for x in a.conc.split(',')]
        assert all(c >= 1 for c in concs)
    except (ValueError, AssertionError):
        ap.error('--conc: a list of positive integers')
    tmp = tempfile.mkdtemp(prefix='bench-serve-')
    model = a.model
    if not model:
        model = os.path.join(tmp, '%s-%s.gguf' % (a.preset, a.type))
        subprocess.run([os.path.join(a.build, 'tools', 'aw-mkmodel'), '--out', model,
                        '--preset', a.preset, '--type', a.type, '--seed', '1'], check=True,
                       stdout=subprocess.DEVNULL)
    feeds = {'agentwire': Prompts(a.prompt_words, a.shared_prefix_words),
             'llama-server': Prompts(a.prompt_words, a.shared_prefix_words)}
    print('machine: %s, %d CPUs; load %s' % (
        subprocess.run(['sh', '-c', "lscpu | sed -n 's/^Model name: *//p'"],
                       capture_output=True, text=True).stdout.strip(), os.cpu_count(),
        open('/proc/loadavg').read().split()[:3]))
    print('model %s (%d MB); %d-word prompts%s, %d new tokens, greedy, %.0f s per point'
          % (model, os.path.getsize(model) >> 20, a.prompt_words,
             ' after a %d-word shared prefix' % a.shared_prefix_words
             if a.shared_prefix_words else '', a.max_new, a.seconds))
    hdr = '%-12s %4s %8s %9s %7s %9s %9s %8s %8s %5s %9s %9s' % (
        'server', 'conc', 'req/s', 'tok/s', 'tok/req', 'ttft p50', 'ttft p99', 'itl p50',
        'itl p99', 'err', 'tok/cpu-s', 'tok/grp-s')
    out = {'agentwire': [], 'llama-server': []}
    # both servers run for the whole benchmark (idle, each leaves the CPUs to
    # the other) and the points alternate, so a change of the shared
    # machine's load hits both alike
    log = open(os.path.join(tmp, 'agentwire.log'), 'w+')
    pa = start_agentwire(a.build, model, max(concs), a.threads, a.aw_set, log)
    pl = port = None
    try:
        if a.llama_server and os.access(a.llama_server, os.X_OK):
            log2 = open(os.path.join(tmp, 'llama-server.log'), 'w+')
            ctx = 64 + a.shared_prefix_words * 2 + a.prompt_words * 2 + a.max_new
            pl, port = start_llama(a.llama_server, model, max(concs), a.threads, ctx,
                                   a.llama_cpus, log2)
        else:
            print('llama-server: not given or not executable: comparison skipped')
        print(hdr + '   (ms)')
        for c in concs:
            # short windows, alternating between the servers, summed: the
            # shared machine's load drifts on the scale of seconds
            acc = {'agentwire': ([], 0), 'llama-server': ([], 0)}
            cpu = {'agentwire': 0.0, 'llama-server': 0.0}
            lead = 0.0
            for _ in range(a.rounds):
                c0, l0 = cpu_s(pa.pid), cpu_s(pa.pid, AW_LEADER)
                r, e = asyncio.run(run_agentwire(c, a.seconds / a.rounds, feeds['agentwire'],
                                                 a.max_new))
                cpu['agentwire'] += cpu_s(pa.pid) - c0
                lead += cpu_s(pa.pid, AW_LEADER) - l0
                acc['agentwire'] = (acc['agentwire'][0] + r, acc['agentwire'][1] + e)
                if pl:
                    c0 = cpu_s(pl.pid)
                    r, e = asyncio.run(run_llama(c, a.seconds / a.rounds, feeds['llama-server'],
                                                 a.max_new, port))
                    cpu['llama-server'] += cpu_s(pl.pid) - c0
                    acc['llama-server'] = (acc['llama-server'][0] + r,
                                           acc['llama-server'][1] + e)
            for name in ('agentwire', 'llama-server'):
                if name == 'llama-server' and not pl:
                    continue
                r = summarize(c, a.seconds, *acc[name])
                # CPU time of the whole server process over the windows
                # (warm-up included, so a slight overestimate for both)
                r['server_cpu_s'] = cpu[name]
                r['tok_per_cpu_s'] = (sum(x[3] for x in acc[name][0]) /
                                      max(cpu[name], 1e-9))
                if name == 'agentwire':
                    # the group's compute thread alone (the dataplane lcore's
                    # polling or sleeping is the rest of the process)
                    r['tok_per_leader_cpu_s'] = (sum(x[3] for x in acc[name][0]) /
                                                 max(lead, 1e-9))
                out[name].append(r)
                print(row(name, r), flush=True)
    finally:
        stop(pa)
        if pl:
            stop(pl)
    for name, rs in out.items():
        if len(rs) >= 2 and rs[0]['tok_per_s'] > 0:
            print('%s: concurrency %d / %d: tokens/s %.1fx, tokens per CPU-second %.1fx' % (
                name, rs[-1]['conc'], rs[0]['conc'], rs[-1]['tok_per_s'] / rs[0]['tok_per_s'],
                rs[-1]['tok_per_cpu_s'] / max(rs[0]['tok_per_cpu_s'], 1e-9)))
    if out['llama-server']:
        for x, y in zip(out['agentwire'], out['llama-server']):
            if y['requests'] and x['requests']:
                print('conc %d: agentwire/llama-server tok/s %.2fx, tok/CPU-s %.2fx, '
                      'p99 TTFT %.2fx' % (
                          x['conc'], x['tok_per_s'] / y['tok_per_s'],
                          x['tok_per_cpu_s'] / max(y['tok_per_cpu_s'], 1e-9),
                          x['ttft_p99_ms'] / y['ttft_p99_ms']))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
