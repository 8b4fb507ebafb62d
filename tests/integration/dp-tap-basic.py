#!/usr/bin/env python3
"""dp-tap-basic — the real daemon on net_tap, driven by kernel sockets:
ARP (the kernel resolves the daemon's address), ICMP echo (ping), PING
(small, and segmented larger than one datagram), GENERATE through the
worker group, STATS, telemetry counters, and a clean shutdown (exit 0, every
mbuf back in its pool)."""
import shutil
import subprocess
import sys

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
model = aw.model_file()
d = aw.Daemon(exe, conf, sets=['model.path=' + model])
ok = False
try:
    c = aw.Client()
    # PING, echoed
    r = c.ping(b'hello agentwire')
    assert r and r['type'] == aw.PONG and r['payload'] == b'hello agentwire', r
    r = c.ping(b'')
    assert r and r['type'] == aw.PONG and r['payload'] == b'', r
    # ARP: the kernel learnt the daemon's MAC from our ARP reply
    neigh = subprocess.run(['ip', 'neigh', 'show', aw.SRV_IP, 'dev', aw.TAP_IF],
                           capture_output=True, text=True).stdout
    assert 'lladdr' in neigh, neigh
    # ICMP echo with the system ping, else a raw socket
    if shutil.which('ping'):
        p = subprocess.run(['ping', '-c', '3', '-i', '0.2', '-W', '2', aw.SRV_IP],
                           capture_output=True, text=True)
        assert p.returncode == 0 and ' 0% packet loss' in p.stdout, p.stdout
    else:
        assert aw.raw_icmp_echo(aw.SRV_IP), 'no ICMP echo reply'
    if shutil.which('arping'):
        p = subprocess.run(['arping', '-c', '2', '-w', '3', '-I', aw.TAP_IF, aw.SRV_IP],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
    # a PING larger than one datagram: segmented request, DATA + END reply
    big = bytes(range(256)) * 20
    t, data, _ = c.call(aw.PING, big, segsize=1000)
    assert t['type'] == aw.END and data == big, (t, len(data))
    # GENERATE: through dispatch, the worker group and the model (greedy)
    prompt = 'Call the weather tool for Paris and then summarise the answer'
    t, data, toks = c.call(aw.GENERATE, aw.gen_body(prompt, 12))
    assert t['type'] == aw.END, (t, t['payload'])
    s = aw.summary(t['payload'])
    assert s['n_data'] == t['seq'] and s['data_bytes'] == len(data), s
    assert s['prompt_tokens'] > 0 and 1 <= s['gen_tokens'] <= 12, s
    assert sum(toks) == s['gen_tokens'], (toks, s)
    # greedy is deterministic: the same prompt gives the same text
    t2, data2, _ = c.call(aw.GENERATE, aw.gen_body(prompt, 12))
    assert data2 == data, (data, data2)
    exp = aw.expect_generate(model, prompt, 12)
    if exp is not None:
        assert data == exp, (data, exp)
        print('greedy output identical to aw-infer: %r' % data)
    # the same request id again is not run twice: the stored answer comes back
    rid = c.rid()
    t3, data3, _ = c.call(aw.GENERATE, aw.gen_body('again', 4), rid=rid)
    t4, data4, _ = c.call(aw.GENERATE, aw.gen_body('again', 4), rid=rid)
    assert data3 == data4
    # STATS: counters as text
    t, data, _ = c.call(aw.STATS, b'')
    assert t['type'] == aw.END and b'ping=' in data, data
    # telemetry through rte_telemetry
    st = d.telemetry('/agentwire/stats')
    assert st['ping'] >= 3 and st['dispatched'] >= 1, st
    assert st['arp_replies'] >= 1 and st['icmp_replies'] >= 1, st
    g = d.telemetry('/agentwire/groups')
    assert g['0']['completed'] >= 1, g
    m = d.telemetry('/agentwire/model')
    assert m['engine'], m
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
