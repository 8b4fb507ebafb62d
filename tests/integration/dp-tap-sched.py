#!/usr/bin/env python3
"""dp-tap-sched — the worker group's scheduler (continuous batching) end to
end: the real daemon on net_tap with a tiny aw-mkmodel model.

  - many concurrent greedy GENERATE requests (mixed prompt lengths, sent at
    once so they share forward passes) each give exactly the text aw-infer
    gives for that prompt offline;
  - a deadline that cannot be met ends with finish = deadline;
  - CANCEL ends a long generation with finish = cancelled and frees its
    sequence: afterwards every KV block is free or held by the prefix cache;
  - a repeated system prompt hits the prefix cache (the group's
    cached_tokens counter in telemetry grows) and the answer still equals
    aw-infer's;
  - a session's second turn reuses the first turn's KV (cached_tokens grows
    by at least the first turn's prompt);
  - with every sequence slot busy, a high-priority request starts before
    normal requests that were waiting before it came;
  - an idle group's leader uses well under a quarter of a CPU (it backs off
    into sleeps; the machine is shared).

Uses its own tap (awgN, 10.97.N.0/24, N from the process id), so it does
not collide with a daemon on aw0."""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import awtest as aw

# a tap and subnet of its own, per process: other daemons (and other runs of
# this test) may be up on the machine at the same time
NET = 1 + os.getpid() % 250
aw.TAP_IF, aw.HOST_IP = 'awg%d' % NET, '10.97.%d.1' % NET
SRV = '10.97.%d.2' % NET
F_KEEP_SESSION, F_CONTINUE = 0x01, 0x02

exe, conf = aw.need_root_and_build(sys.argv)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tools', 'python'))
import agentwire  # noqa: E402


def model_4k():
    """The tiny preset with a 4096-position context (long generations)."""
    import atexit
    path = '/tmp/aw-it-sched-%d.gguf' % os.getpid()
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    subprocess.run([aw.TOOLS['mkmodel'], '--out', path, '--preset', 'tiny', '--seed', '7',
                    '--ctx', '4096'], check=True, stdout=subprocess.DEVNULL)
    return path


def body(prompt, max_new_tokens=0, deadline_us=0, priority=0, flags=0):
    fixed = struct.pack('<HBBIfIfffIQ', 40, priority, flags, max_new_tokens, 0.0, 0, 1.0, 0.0,
                        1.0, deadline_us, 0)
    p = prompt.encode()
    return fixed + struct.pack('<HHI', 1, 0, len(p)) + p


def group0(d):
    return d.group(0)


def group0_idle(d, timeout=10.0):
    return d.group_idle(0, timeout)


model = model_4k()
N_NEW = 16
words = ('agent tool call route ticket weather json schema answer plan search fetch '
         'summarize classify label reply').split()
prompts = []
for i in range(24):
    n = 1 + (i * 7) % 60  # 1..60 words: prompts of very different lengths
    prompts.append(' '.join(words[(i + k) % len(words)] for k in range(n)) + ' %d' % i)
expected = {p: aw.expect_generate(model, p, N_NEW) for p in prompts}
if any(v is None for v in expected.values()):
    aw.skip('aw-infer cannot run text prompts here')

d = aw.Daemon(exe, conf, sets=['model.path=' + model, 'limits.queue_depth=256',
                               'limits.max_new_tokens=4096', 'group.0.kv_cache=32M',
                               'group.0.max_batch=16',
                               'port.0.device=net_tap0,iface=' + aw.TAP_IF,
                               'port.0.address=%s/24' % SRV])
ok = False
try:
    g = group0(d)
    assert g.get('scheduler') == 1, g

    # 1. concurrent greedy requests == aw-infer, one by one
    results, errors = {}, []
    lock = threading.Lock()
    start = threading.Barrier(len(prompts))

    def agent(p):
        try:
            c = aw.Client(host=SRV, timeout=1.0)
            start.wait()
            t, data, _ = c.call(aw.GENERATE, body(p, N_NEW), tries=200)
            assert t['type'] == aw.END, (t, t['payload'])
            s = aw.summary(t['payload'])
            with lock:
                results[p] = (data, s)
        except Exception as e:  # reported below
            with lock:
                errors.append('%r: %r' % (p[:20], e))

    ts = [threading.Thread(target=agent, args=(p,)) for p in prompts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    for p in prompts:
        data, s = results[p]
        assert data == expected[p], (p, data, expected[p])
        assert s['finish'] in (0, 1) and 1 <= s['gen_tokens'] <= N_NEW, s  # EOS or length
    g = group0(d)
    steps, toks = g['steps'], g['prefill_tokens'] + g['decode_tokens']
    print('%d concurrent requests == aw-infer; %d steps for %d tokens (%.1f per step)'
          % (len(prompts), steps, toks, toks / max(steps, 1)))

    c = aw.Client(host=SRV, timeout=1.0)
    # 2. a deadline that cannot be met
    t, data, _ = c.call(aw.GENERATE, body('route this ticket', 8, deadline_us=1))
    assert t['type'] == aw.END and aw.summary(t['payload'])['finish'] == 2, t
    assert data == b''
    print('deadline 1 us: finish deadline')

    # 3. CANCEL a long generation after its first token
    rid = c.rid()
    c.send(aw.hdr(aw.GENERATE, rid, body('tell me a story', 4000)))
    got, term = 0, None
    deadline = time.time() + 30
    while term is None and time.time() < deadline:
        r = c.recv(0.5)
        if not r or r['request_id'] != rid:
            if got:
                c.send(aw.hdr(aw.CANCEL, rid))
            continue
        if r['type'] == aw.DATA:
            got += 1
            if got == 1:
                c.send(aw.hdr(aw.CANCEL, rid))
        elif r['type'] in (aw.END, aw.ERROR):
            term = r
    assert term is not None and term['type'] == aw.END, term
    s = aw.summary(term['payload'])
    assert s['finish'] == 3 and s['gen_tokens'] < 4000, s
    c.send(aw.hdr(aw.ACK, rid))
    time.sleep(0.2)
    g = group0_idle(d)
    assert g['running'] == 0 and g['sched_running'] == 0, g
    assert g['free_blocks'] + g['cache_blocks'] == g['n_blocks'], g
    print('CANCEL after %d tokens: finish cancelled; KV: %d free + %d cached of %d'
          % (s['gen_tokens'], g['free_blocks'], g['cache_blocks'], g['n_blocks']))

    # 4. a repeated system prompt hits the prefix cache
    system = ('You are a router. Tools: ' + ' '.join(words * 4) + '. Answer with one tool.')
    before = group0(d)['cached_tokens']
    for q in (' Question: weather in Paris?', ' Question: open a ticket'):
        t, data, _ = c.call(aw.GENERATE, body(system + q, 8))
        assert t['type'] == aw.END, t
        exp = aw.expect_generate(model, system + q, 8)
        assert data == exp, (data, exp)
    hit = group0(d)['cached_tokens'] - before
    assert hit >= 48, hit
    print('repeated system prompt: %d tokens from the prefix cache, answers == aw-infer' % hit)

    # 5. a session's second turn continues its KV
    sid = 0x5e55
    rid = c.rid()
    c.send(aw.hdr(aw.GENERATE, rid, body('Hello, I need a flight to Rome.', 8,
                                         flags=F_KEEP_SESSION), session_id=sid))
    s1 = None
    while s1 is None:
        r = c.recv(2.0)
        assert r is not None, 'no answer to turn 1'
        if r['request_id'] == rid and r['type'] == aw.END:
            s1 = aw.summary(r['payload'])
    c.send(aw.hdr(aw.ACK, rid))
    g = group0(d)
    assert g['sessions'] >= 1, g
    before = g['cached_tokens']
    rid = c.rid()
    c.send(aw.hdr(aw.GENERATE, rid, body(' And a hotel.', 8, flags=F_KEEP_SESSION),
                  session_id=sid))
    s2 = None
    while s2 is None:
        r = c.recv(2.0)
        assert r is not None, 'no answer to turn 2'
        if r['request_id'] == rid and r['type'] == aw.END:
            s2 = aw.summary(r['payload'])
    c.send(aw.hdr(aw.ACK, rid))
    assert s2['finish'] in (0, 1), s2
    # CONTINUE: a turn of a session this server does not hold is refused
    rid = c.rid()
    c.send(aw.hdr(aw.GENERATE, rid, body(' And a car.', 8,
                                         flags=F_KEEP_SESSION | F_CONTINUE),
                  session_id=0xdead))
    r = None
    while r is None or r['request_id'] != rid:
        r = c.recv(2.0)
        assert r is not None, 'no answer to CONTINUE of an unknown session'
    assert r['type'] == aw.ERROR and aw.error_of(r['payload'])[0] == 4, r  # UNKNOWN_SESSION
    c.send(aw.hdr(aw.ACK, rid))
    # ... and accepted for the session it holds
    rid = c.rid()
    c.send(aw.hdr(aw.GENERATE, rid, body(' And a car.', 8,
                                         flags=F_KEEP_SESSION | F_CONTINUE),
                  session_id=sid))
    r = None
    while r is None or r['request_id'] != rid or r['type'] == aw.DATA:
        r = c.recv(2.0)
        assert r is not None, 'no answer to CONTINUE of a held session'
    assert r['type'] == aw.END, r
    c.send(aw.hdr(aw.ACK, rid))
    print('CONTINUE: UNKNOWN_SESSION for a session not held, served for one held')
    reused = group0(d)['cached_tokens'] - before
    assert reused >= s1['prompt_tokens'], (reused, s1)
    assert s2['prompt_tokens'] > s1['prompt_tokens'] + s1['gen_tokens'] - 1, (s1, s2)
    print('session turn 2: %d prompt tokens, %d reused from turn 1'
          % (s2['prompt_tokens'], reused))
    # the Python client's Session: later turns send only their text with
    # CONTINUE; a conversation the server does not hold (here: one the client
    # brings from elsewhere) is refused UNKNOWN_SESSION and resent whole
    with agentwire.Client(SRV, aw.PORT, timeout=5.0) as pc:
        ps = agentwire.Session(pc)
        a1, t1 = ps.generate('Hello, I need a flight to Rome.', max_new_tokens=8)
        a2, t2 = ps.generate(' And a hotel.', max_new_tokens=8)
        # turn 2's prompt is the session's (turn 1's prompt and answer) + its own
        assert ps.resent == 0, ps.resent
        assert t2.prompt_tokens > t1.prompt_tokens + t1.gen_tokens - 1, (t1, t2)
        moved = agentwire.Session(pc, history=ps.history)  # a new id: not held here
        a3, t3 = moved.generate(' And a car.', max_new_tokens=8)
        assert moved.resent == 1, moved.resent
        # the resent turn carried the whole conversation, and the next one
        # continues it on the server
        a4, t4 = moved.generate(' Thanks.', max_new_tokens=4)
        assert moved.resent == 1, moved.resent
        assert t4.prompt_tokens > t3.prompt_tokens + t3.gen_tokens - 1, (t3, t4)
        print('python Session: 2 turns continued, a moved conversation resent once (%d '
              'prompt tokens), then continued (%d)' % (t3.prompt_tokens, t4.prompt_tokens))
    # 6. priority: with every slot (max_batch 16) taken by long generations,
    # a high-priority request overtakes normal ones that wait; prompts whose
    # greedy output runs 200 tokens without EOS (checked with aw-infer), so
    # no slot frees early
    longp = []
    for i in range(1, 60):
        p = 'story number %d begins' % i
        out = subprocess.run([aw.TOOLS['infer'], '-m', model, '-p', p, '-n', '200', '--temp',
                              '0', '--ids'], capture_output=True, text=True).stdout.split()
        if len(out) == 200:
            longp.append(p)
        if len(longp) == 18:
            break
    assert len(longp) == 18, longp
    pc = aw.Client(host=SRV, timeout=2.0)
    # ~3600 DATA datagrams arrive in a burst: room for all of them
    pc.s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (root)
    rids = [pc.rid() for _ in range(19)]
    for rid, p in zip(rids, longp):
        pc.send(aw.hdr(aw.GENERATE, rid, body(p, 200)))
    pc.send(aw.hdr(aw.GENERATE, rids[18], body('urgent: pick a tool', 4, priority=1)))
    first, ends = {}, set()
    n_dgram = 0
    while len(ends) < 19:
        r = pc.recv(5.0)
        assert r is not None, 'priority: stalled (%d ended)' % len(ends)
        n_dgram += 1
        if r['type'] == aw.DATA and r['request_id'] not in first:
            first[r['request_id']] = n_dgram
        if r['type'] in (aw.END, aw.ERROR):
            assert r['type'] == aw.END, r
            ends.add(r['request_id'])
            pc.send(aw.hdr(aw.ACK, r['request_id']))
    hi = first[rids[18]]
    assert hi < first[rids[16]] and hi < first[rids[17]], (hi, first[rids[16]],
                                                           first[rids[17]])
    print('priority: the high-priority request started before the 2 waiting normal ones')

    # 7. an idle group does not keep a CPU busy: its leader (EAL lcore 2 in
    # dp-tap.conf, thread rte-worker-2) backs off into sleeps
    def thread_cpu(name):
        for t in os.listdir('/proc/%d/task' % d.p.pid):
            with open('/proc/%d/task/%s/comm' % (d.p.pid, t)) as f:
                if f.read().strip() == name:
                    with open('/proc/%d/task/%s/stat' % (d.p.pid, t)) as f:
                        v = f.read().rsplit(')', 1)[1].split()
                    return (int(v[11]) + int(v[12])) / os.sysconf('SC_CLK_TCK')
        raise AssertionError('no thread ' + name)
    time.sleep(1.0)
    c0, t0 = thread_cpu('rte-worker-2'), time.time()
    time.sleep(2.0)
    used = (thread_cpu('rte-worker-2') - c0) / (time.time() - t0)
    assert used < 0.25, 'idle group leader used %.0f %% of a CPU' % (used * 100)
    print('idle group leader: %.1f %% of a CPU' % (used * 100))
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
