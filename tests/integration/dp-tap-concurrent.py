#!/usr/bin/env python3
"""dp-tap-concurrent — many clients at once: 32 threads, each with its own
UDP socket, mixing PING and GENERATE. Every request completes, greedy
answers are identical across clients for the same prompt, and the daemon
exits 0 with every mbuf back."""
import sys
import threading

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
model = aw.model_file()
d = aw.Daemon(exe, conf, sets=['model.path=' + model, 'limits.queue_depth=256'])
ok = False
N, PER = 32, 8
prompts = ['route this ticket', 'pick a tool for the weather', 'classify: spam or ham']
results, errors = {}, []
lock = threading.Lock()


def agent(i):
    try:
        c = aw.Client(timeout=1.0)
        for k in range(PER):
            if k % 2 == 0:
                payload = b'agent %d ping %d' % (i, k)
                r = c.ping(payload)
                assert r and r['payload'] == payload, r
            else:
                p = prompts[(i + k) % len(prompts)]
                t, data, _ = c.call(aw.GENERATE, aw.gen_body(p, 6), tries=200)
                assert t['type'] == aw.END, (t, t['payload'])
                with lock:
                    results.setdefault(p, set()).add(data)
    except Exception as e:  # reported below
        with lock:
            errors.append('agent %d: %r' % (i, e))


try:
    ts = [threading.Thread(target=agent, args=(i,)) for i in range(N)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    for p, outs in results.items():
        assert len(outs) == 1, (p, outs)
    st = d.telemetry('/agentwire/stats')
    assert st['ping'] >= N * PER // 2, st
    assert st['dispatched'] >= N * PER // 2, st
    print('pings %d, dispatched %d, overloaded %d' % (st['ping'], st['dispatched'],
                                                      st['overloaded']))
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
