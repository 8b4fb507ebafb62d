#!/usr/bin/env python3
"""dp-tap-overload — offered load far above capacity: the echo test engine
at 20 ms per token behind a queue of 4. The excess is answered OVERLOADED
at once (well before a single request could finish), admitted requests
complete, mbufs in use come back to their level. Then SIGTERM with
requests running and queued: each gets a final END (finish "cancelled")
and the daemon exits 0 with every mbuf back."""
import sys
import time

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
model = aw.model_file()
d = aw.Daemon(exe, conf, sets=['model.path=' + model, 'limits.queue_depth=4',
                               'group.0.ring_size=256'],
              env={'AW_ENGINE': 'echo:20000'})
ok = False
try:
    c = aw.Client(timeout=2.0)
    assert c.ping(b'x')
    base = d.telemetry('/agentwire/stats')['mbufs_in_use']
    prompt = 'one two three four five'
    for rnd in range(2):
        ids = [c.rid() for _ in range(40)]
        t0 = time.time()
        for rid in ids:
            c.send(aw.hdr(aw.GENERATE, rid, aw.gen_body(prompt, 5)))
        over, ended, first_over = 0, 0, None
        while over + ended < len(ids):
            r = c.recv(3.0)
            assert r is not None, 'missing replies: %d overloaded %d ended' % (over, ended)
            if r['type'] == aw.ERROR:
                code, msg = aw.error_of(r['payload'])
                assert code == aw.ERR_OVERLOADED, (code, msg)
                over += 1
                first_over = first_over or time.time() - t0
            elif r['type'] == aw.END:
                s = aw.summary(r['payload'])
                assert s['finish'] == 0 and s['gen_tokens'] == 5, s
                ended += 1
        # 5 tokens x 20 ms = 100 ms per request: OVERLOADED came before any could end
        print('round %d: %d overloaded (first after %.1f ms), %d completed' %
              (rnd, over, first_over * 1e3, ended))
        assert over >= 30 and ended >= 4, (over, ended)  # queue_depth 4 admitted at least
        # ... and at most: 4 waiting + 1 running (the ring itself has ring_size entries)
        assert ended <= 5, (over, ended)
        assert first_over < 0.1, first_over
    time.sleep(0.2)
    st = d.telemetry('/agentwire/stats')
    assert st['mbufs_in_use'] <= base + 64, (base, st['mbufs_in_use'])
    g = d.telemetry('/agentwire/groups')['0']
    assert g['overloaded'] >= 60, g
    assert g['ring_size'] == 256 and g['queue_depth'] == 4, g  # [group 0] ring_size

    # shutdown with work in flight: everyone gets a final message
    ids = [c.rid() for _ in range(4)]
    for rid in ids:
        c.send(aw.hdr(aw.GENERATE, rid, aw.gen_body('a b c d e f g h i j k l m n o p', 16)))
        time.sleep(0.03)
    time.sleep(0.1)
    d.p.send_signal(aw.signal.SIGTERM)
    finals = {}
    while len(finals) < len(ids):
        r = c.recv(5.0)
        assert r is not None, 'no final message for %s' % (set(ids) - set(finals))
        if r['type'] in (aw.END, aw.ERROR):
            finals[r['request_id']] = r
    fins = [aw.summary(r['payload'])['finish'] for r in finals.values() if r['type'] == aw.END]
    print('finals after SIGTERM:', fins)
    assert fins.count(3) >= 3, fins  # cancelled
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
