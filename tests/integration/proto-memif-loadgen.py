#!/usr/bin/env python3
"""proto-memif-loadgen — aw-loadgen's DPDK transport against the real daemon
over net_memif (two DPDK processes, no hugepages, no tap): the loadgen
resolves the daemon by ARP through the dataplane's packet layer, then runs a
closed-loop PING + GENERATE mix and an open-loop PING run; every request is
answered (GENERATE may be refused OVERLOADED, explicitly).

    proto-memif-loadgen.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER AW-LOADGEN
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import awtest as aw

if len(sys.argv) < 6:
    aw.skip('usage: proto-memif-loadgen.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER AW-LOADGEN')
if os.geteuid() != 0:
    aw.skip('needs root (DPDK EAL)')
loadgen = sys.argv[5]
p = subprocess.run([loadgen, '--transport', 'dpdk', '--help'], capture_output=True, text=True)
if p.returncode == 2:
    aw.skip('aw-loadgen built without DPDK')
exe, conf = sys.argv[1], sys.argv[2]
aw.TOOLS['mkmodel'], aw.TOOLS['infer'] = sys.argv[3], sys.argv[4]
model = aw.model_file()
tag = os.getpid()
sock = '/tmp/aw-memif-%d.sock' % tag
prefix = 'aw-memif-%d' % tag
log = open('/tmp/%s.log' % prefix, 'w+')
d = subprocess.Popen([exe, '-c', conf, '--set', 'eal.file_prefix=' + prefix,
                      '--set', 'model.path=' + model,
                      '--set', 'port.0.device=net_memif0,role=server,socket=%s,'
                               'socket-abstract=no' % sock,
                      '--set', 'port.0.address=10.97.0.2/24'],
                     stdout=log, stderr=subprocess.STDOUT)


def output():
    log.flush()
    with open(log.name) as f:
        return f.read()


ok = False
try:
    deadline = time.time() + 60
    while 'ready:' not in output():
        assert d.poll() is None, 'daemon exited:\n' + output()
        assert time.time() < deadline, 'daemon not ready:\n' + output()
        time.sleep(0.1)
    # CPU 0: the loadgen (the daemon polls on CPU 1; its CPU 0 threads yield)
    eal = ('--no-huge -m 512 --no-pci -l 0 --file-prefix=aw-lg-%d '
           '--vdev=net_memif0,role=client,socket=%s,socket-abstract=no' % (tag, sock))
    base = [loadgen, '-s', '10.97.0.2:7878', '--transport', 'dpdk', '--local-ip',
            '10.97.0.1/24', '--eal', eal, '--json', '--no-progress', '--warmup', '0.3']
    with tempfile.NamedTemporaryFile('w', suffix='.wl', delete=False) as f:
        f.write('mix = ping:4 generate:1\nprompt_tokens = fixed:16\nmax_new_tokens = fixed:4\n')
    try:
        for args in (['-a', '2', '-d', '2', '-w', f.name], ['-r', '500', '-d', '1']):
            r = subprocess.run(base + args, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            res = json.loads(r.stdout)
            ping = res['ops']['ping']
            assert ping['ok'] == ping['sent'] > 0, ping
            if 'generate' in res['ops']:
                gen = res['ops']['generate']
                assert gen['ok'] > 0 and gen['ok'] + gen['err'] == gen['sent'], gen
                assert set(gen['errors']) <= {'OVERLOADED'}, gen['errors']
            print('dpdk transport %s: ping p50 %.1f us p99 %.1f us (%d ok)'
                  % (' '.join(args[:2]), ping['e2e_us']['p50'], ping['e2e_us']['p99'],
                     ping['ok']))
    finally:
        os.unlink(f.name)
    ok = True
finally:
    d.terminate()
    try:
        rc = d.wait(30)
    except subprocess.TimeoutExpired:
        d.kill()
        rc = d.wait()
    if not ok or rc != 0:
        print(output())
    if os.path.exists(sock):
        os.unlink(sock)
assert rc == 0, 'daemon exit %d' % rc
