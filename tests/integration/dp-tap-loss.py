#!/usr/bin/env python3
"""dp-tap-loss — 5% loss both ways with tc netem (egress of the tap, and its
ingress redirected through an ifb device when the kernel has one; where the
kernel has no sch_netem, the client drops 5% of what it sends and receives
instead): every request completes (client retransmits and RESUMEs, the
server deduplicates and resends from its store) with the same output as
without loss."""
import subprocess
import sys

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
model = aw.model_file()
d = aw.Daemon(exe, conf, sets=['model.path=' + model])
ok = False
ifb = 'awifb%d' % (aw.os.getpid() % 1000)


def sh(*a):
    return subprocess.run(list(a), capture_output=True, text=True)


try:
    c = aw.Client(timeout=0.05)
    prompts = ['tool call %d: find the cheapest flight to Oslo' % i for i in range(20)]
    ref = {}
    for p in prompts:
        t, data, _ = c.call(aw.GENERATE, aw.gen_body(p, 24))
        assert t['type'] == aw.END
        ref[p] = data
    # loss on the way in (kernel -> daemon) ...
    r = sh('tc', 'qdisc', 'add', 'dev', aw.TAP_IF, 'root', 'netem', 'loss', '5%')
    netem = r.returncode == 0
    if not netem:
        print('tc netem unavailable (%s): the client drops 5%% both ways' % r.stderr.strip())
        c = aw.Client(timeout=0.05, loss=0.05)
    # ... and out (daemon -> kernel), through an ifb device if possible
    both = not netem
    if netem and sh('ip', 'link', 'add', ifb, 'type', 'ifb').returncode == 0:
        sh('ip', 'link', 'set', ifb, 'up')
        sh('tc', 'qdisc', 'add', 'dev', aw.TAP_IF, 'handle', 'ffff:', 'ingress')
        sh('tc', 'filter', 'add', 'dev', aw.TAP_IF, 'parent', 'ffff:', 'matchall', 'action',
           'mirred', 'egress', 'redirect', 'dev', ifb)
        both = sh('tc', 'qdisc', 'add', 'dev', ifb, 'root', 'netem', 'loss',
                  '5%').returncode == 0
    print('loss 5%% on %s (%s)' % ('both directions' if both else 'requests only',
                                  'netem' if netem else 'in the client'))
    for rnd in range(3):
        for p in prompts:
            t, data, _ = c.call(aw.GENERATE, aw.gen_body(p, 24), tries=400)
            assert t['type'] == aw.END, t
            assert data == ref[p], (p, data, ref[p])
        for i in range(50):
            assert c.ping(b'p%d' % i, tries=100)
    st = d.telemetry('/agentwire/stats')
    print('resent %d, duplicates %d, req_resume %d' % (st['resent'], st['duplicates'],
                                                       st['req_resume']))
    assert st['resent'] + st['duplicates'] > 0, st
    ok = True
finally:
    sh('tc', 'qdisc', 'del', 'dev', aw.TAP_IF, 'root')
    sh('tc', 'qdisc', 'del', 'dev', aw.TAP_IF, 'ingress')
    sh('ip', 'link', 'del', ifb)
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
