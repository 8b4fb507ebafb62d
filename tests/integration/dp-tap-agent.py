#!/usr/bin/env python3
"""dp-tap-agent — agent operations end to end: the real daemon on net_tap
with a tiny aw-mkmodel model, driven by the Python client
(tools/python/agentwire.py).

  - EMBED (mean, cls, last; normalised or not) equals `aw-infer --embed`
    on the same file and prompt;
  - CLASSIFY equals `aw-infer --label` (one prefill + the label pass, through
    the group's scheduler), with single-token and multi-token labels, several
    requests at once; a repeated prompt is read from the prefix cache;
  - chat MESSAGES are rendered (the fallback template) and answered;
  - bad input gets a clear error and disturbs nothing: malformed JSON,
    an unknown role, a tool result for a call never made, 10 000 tools, a
    schema nested 1 000 deep, tools with a template that has none, a named
    tool not offered; a GENERATE afterwards still equals aw-infer.

Own tap (awa0, 10.96.0.0/24)."""
import json
import math
import os
import subprocess
import sys
import threading
import time

import awtest as aw

aw.TAP_IF, aw.HOST_IP = 'awa0', '10.96.0.1'
SRV = '10.96.0.2'

exe, conf = aw.need_root_and_build(sys.argv)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tools', 'python'))
import agentwire  # noqa: E402

model = aw.model_file()


def infer(*args):
    p = subprocess.run([aw.TOOLS['infer'], '-m', model] + list(args), capture_output=True,
                       text=True)
    if p.returncode != 0:
        aw.skip('aw-infer %s: %s' % (' '.join(args[:3]), p.stderr.strip()[:160]))
    return p.stdout


def group0(d):
    return d.group(0)


def group0_idle(d, timeout=10.0):
    return d.group_idle(0, timeout)


d = aw.Daemon(exe, conf, sets=['model.path=' + model, 'limits.queue_depth=256',
                               'group.0.kv_cache=16M', 'group.0.max_batch=8',
                               'port.0.device=net_tap0,iface=awa0',
                               'port.0.address=10.96.0.2/24'])
ok = False
try:
    c = agentwire.Client(SRV, 7878, timeout=20.0, rto=0.2)
    prompt = 'route this ticket about the weather in Paris'

    # 1. EMBED == aw-infer --embed
    for pool in ('mean', 'cls', 'last'):
        for norm in (True, False):
            v = c.embed(prompt, pooling=pool, normalize=norm)
            args = ['-p', prompt, '--embed', pool] + ([] if norm else ['--no-normalize'])
            ref = [float(x) for x in infer(*args).split()]
            assert len(v) == len(ref), (len(v), len(ref))
            dot = sum(a * b for a, b in zip(v, ref))
            cos = dot / math.sqrt(sum(a * a for a in v) * sum(b * b for b in ref))
            err = max(abs(a - b) for a, b in zip(v, ref))
            assert cos > 0.99999 and err < 1e-3 * max(1.0, max(abs(b) for b in ref)), \
                (pool, norm, cos, err)
            if norm:
                assert abs(sum(a * a for a in v) - 1) < 1e-4
    print('EMBED mean/cls/last (normalised and raw) == aw-infer --embed')

    # 2. CLASSIFY == aw-infer --label, several at once
    cases = [(prompt, ['weather', 'billing', 'search', 'hello world']),
             ('agent tool call', ['a', 'b', 'c', 'route json schema answer']),
             ('plan search fetch summarize', ['x'] + ['label %d' % i for i in range(11)])]
    want = {}
    for p, labels in cases:
        out = infer('-p', p, *sum([['--label', lab] for lab in labels], []))
        want[p] = [float(line.split('\t')[0]) for line in out.splitlines()]
    got, errs = {}, []

    def one(p, labels):
        try:
            cc = agentwire.Client(SRV, 7878, timeout=20.0, rto=0.2)
            got[p] = cc.classify(p, labels)
        except Exception as e:  # reported below
            errs.append(repr(e))

    ts = [threading.Thread(target=one, args=cs) for cs in cases]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    for p, labels in cases:
        assert len(got[p]) == len(labels)
        assert abs(sum(got[p]) - 1) < 1e-4, got[p]
        for a, b in zip(got[p], want[p]):
            assert abs(a - b) < 2e-4, (p, got[p], want[p])
    before = group0(d)['cached_tokens']
    again = c.classify(cases[0][0] + ' and in Rome', ['weather', 'billing'])
    assert len(again) == 2
    hit = group0(d)['cached_tokens'] - before
    assert hit > 0, hit
    print('CLASSIFY == aw-infer --label (3 concurrent, up to 12 labels); '
          'repeated prompt: %d tokens from the prefix cache' % hit)

    # 3. chat messages (the tiny model has no template: the ChatML fallback)
    text, calls, s = c.chat([{'role': 'system', 'content': 'You route.'},
                             {'role': 'user', 'content': 'weather in Paris?'}],
                            max_new_tokens=8)
    assert calls == [] and s.gen_tokens >= 1, (text, s)
    print('chat messages rendered and answered (%d tokens)' % s.gen_tokens)

    # 4. bad input: a clear error each, nothing disturbed
    user = [{'role': 'user', 'content': 'hi'}]
    tool = {'type': 'function', 'function': {'name': 'get_weather'}}
    deep = ('[{"type": "function", "function": {"name": "f", "parameters": ' +
            '{"items": ' * 1000 + '{}' + '}' * 1000 + '}}]').encode()
    bad = [
        ('malformed JSON', dict(messages=None, raw=b'[{"role": "user", "content": "hi"'),
         'BAD_REQUEST', 'MESSAGES'),
        ('unknown role', dict(messages=[{'role': 'wizard', 'content': 'x'}]), 'BAD_REQUEST',
         "unknown role 'wizard'"),
        ('tool result never called',
         dict(messages=user + [{'role': 'tool', 'tool_call_id': 'call_1', 'content': '1'}]),
         'BAD_REQUEST', 'never made'),
        # 10 000 tools are beyond the daemon's message limit (64 KiB by default);
        # 200 fit in a message and meet the tool limit
        ('10 000 tools', dict(messages=user, tools=[tool] * 10000), 'TOO_LONG',
         "message size: the request of "),
        ('200 tools', dict(messages=user, tools=[tool] * 200), 'BAD_REQUEST',
         'tool count: 200 tools in TOOLS, at most 128'),
        ('1 000-deep schema', dict(raw_tools=deep), 'BAD_REQUEST', 'TOOLS'),
        ('tools, no tool template', dict(messages=user, tools=[tool]), 'UNSUPPORTED',
         'template'),
    ]
    for what, kw, code, needle in bad:
        raw, raw_tools = kw.pop('raw', None), kw.pop('raw_tools', None)
        try:
            if raw is not None or raw_tools is not None:
                m = raw if raw is not None else json.dumps(user).encode()
                body = agentwire.request_body(None) + agentwire.struct.pack(
                    '<HHI', agentwire.TAG_MESSAGES, 0, len(m)) + m
                if raw_tools is not None:
                    body += agentwire.struct.pack('<HHI', agentwire.TAG_TOOLS, 0,
                                                  len(raw_tools)) + raw_tools
                c._collect(agentwire.GENERATE, body)
            else:
                c.chat(**kw)
            raise AssertionError('%s: accepted' % what)
        except agentwire.AgentwireError as e:
            assert e.name == code and needle in e.message, (what, e)
            print('%-26s -> %s: %s' % (what, e.name, e.message))
    exp = aw.expect_generate(model, prompt, 8)
    text, s = c.generate(prompt, max_new_tokens=8)
    if exp is not None:
        assert text.encode() == exp, (text, exp)
    g = group0_idle(d)
    assert g['running'] == 0 and g['sched_running'] == 0, g
    print('after the bad input: GENERATE == aw-infer, nothing running')
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out

# --- phase 2: a Qwen2.5-style template (tool calls as <tool_call>{...}</tool_call>)
# on the same random weights: the grammar does all the work
tmpl = '/tmp/aw-it-agent-tmpl-%d.jinja' % os.getpid()
with open(tmpl, 'w') as f:
    f.write('{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n'
            '{%- endfor %}<tools></tools><tool_response></tool_response>')
qmodel = '/tmp/aw-it-agent-qwen-%d.gguf' % os.getpid()
subprocess.run([aw.TOOLS['mkmodel'], '--out', qmodel, '--preset', 'tiny', '--seed', '7',
                '--ctx', '8192', '--chat-template', tmpl], check=True, stdout=subprocess.DEVNULL)
os.unlink(tmpl)
d = aw.Daemon(exe, conf, sets=['model.path=' + qmodel, 'group.0.kv_cache=64M',
                               'limits.max_new_tokens=6000',
                               'port.0.device=net_tap0,iface=awa0',
                               'port.0.address=10.96.0.2/24'])
ok = False
try:
    for _ in range(50):  # the re-created tap's route may take a moment
        try:
            c = agentwire.Client(SRV, 7878, timeout=30.0, rto=0.2)
            c.ping(b'up')
            break
        except OSError:
            time.sleep(0.2)
    user = [{'role': 'user', 'content': 'What is the weather in Paris?'}]
    tools = [{'type': 'function', 'function': {
                  'name': 'get_weather', 'parameters': {
                      'type': 'object', 'required': ['city', 'days'],
                      'properties': {'city': {'type': 'string', 'maxLength': 8},
                                     'days': {'type': 'integer', 'minimum': 1,
                                              'maximum': 7}}}}},
             {'type': 'function', 'function': {
                  'name': 'get_time', 'parameters': {
                      'type': 'object', 'required': ['zone'],
                      'properties': {'zone': {'enum': ['UTC', 'CET', 'PST']}}}}}]

    def valid(call):
        a = call.arguments
        if call.name == 'get_weather':
            return (set(a) == {'city', 'days'} and isinstance(a['city'], str) and
                    len(a['city']) <= 8 and isinstance(a['days'], int) and 1 <= a['days'] <= 7)
        return call.name == 'get_time' and a == {'zone': a.get('zone')} and \
            a['zone'] in ('UTC', 'CET', 'PST')

    for seed in range(1, 6):
        text, calls, s = c.chat(user, tools=tools, tool_choice='get_weather',
                                max_new_tokens=96, temperature=1.0, seed=seed)
        assert len(calls) == 1 and calls[0].name == 'get_weather' and valid(calls[0]), calls
        assert s.finish == 'tool_calls', s
        text, calls, s = c.chat(user, tools=tools, tool_choice='required', max_new_tokens=96,
                                temperature=1.0, seed=seed)
        assert len(calls) == 1 and valid(calls[0]), calls
        assert s.finish == 'tool_calls', s
    print('named and required tool calls on random weights: valid for their schema (5 seeds '
          'each), finish tool_calls; e.g. %r' % calls[0])
    # fast-forward: the tokens the grammar determines ('{"name": "get_weather", ...')
    # were emitted without a decode step each
    ff = group0_idle(d)['forced_tokens']
    assert ff >= 10 * 10, ff
    print('fast-forward: %d tokens forced over the 10 calls' % ff)
    # a call of several KB of arguments: more than one reply datagram, sent as
    # TOOL_CALL fragments (flag MORE) and gathered by the client
    big = [{'type': 'function', 'function': {
                'name': 'write_file', 'parameters': {
                    'type': 'object', 'required': ['content'],
                    'properties': {'content': {'type': 'string', 'minLength': 4000,
                                               'maxLength': 4100}}}}}]
    text, calls, s = c.chat(user, tools=big, tool_choice='write_file', max_new_tokens=6000,
                            temperature=1.0, seed=11)
    assert len(calls) == 1 and calls[0].name == 'write_file', (calls, s.__dict__)
    n = len(calls[0].arguments['content'])
    assert 4000 <= n <= 4100 and set(calls[0].arguments) == {'content'}, n
    assert s.finish == 'tool_calls' and s.n_data >= 3, s
    print('a %d-character argument: one call in %d TOOL_CALL datagrams, %d tokens'
          % (n, s.n_data, s.gen_tokens))
    # auto: the model decides (random weights rarely write the marker)
    text, calls, s = c.chat(user, tools=tools, max_new_tokens=24, temperature=1.0, seed=3)
    assert all(valid(k) for k in calls), calls
    print('auto: %d calls, %d tokens, finish %s' % (len(calls), s.gen_tokens, s.finish))
    # RESPONSE_FORMAT: the whole answer is JSON that validates
    schema = {'type': 'object', 'required': ['ok', 'n'],
              'properties': {'ok': {'type': 'boolean'}, 'n': {'type': 'integer', 'minimum': 0,
                                                             'maximum': 99}}}
    for seed in range(1, 4):
        text, s = c.generate('answer in JSON', max_new_tokens=64, temperature=1.0, seed=seed,
                             response_format=schema)
        v = json.loads(text)
        assert isinstance(v['ok'], bool) and 0 <= v['n'] <= 99 and set(v) == {'ok', 'n'}, v
        assert s.finish == 'stop', s
    print('RESPONSE_FORMAT: 3 answers parse and validate, e.g. %s' % text)
    try:
        c.generate('x', response_format={'not': {'type': 'string'}})
        raise AssertionError('unsupported keyword accepted')
    except agentwire.AgentwireError as e:
        assert e.name == 'BAD_REQUEST' and "'not'" in e.message, e
        print('unsupported keyword -> %s: %s' % (e.name, e.message))
    # aw-loadgen with an agent mix: tools, CLASSIFY, EMBED, GENERATE
    if len(sys.argv) > 5:
        wl = '/tmp/aw-it-agent-%d.wl' % os.getpid()
        with open(wl, 'w') as f:
            f.write('mix = tools:3 classify:3 embed:2 generate:2\nprompt_tokens = uniform:5:40\n'
                    'max_new_tokens = fixed:48\nlabels = 8\ntools = 3\ntool_choice = required\n'
                    'prefix_tokens = 30\nshared_prefix = 0.9\npooling = last\n')
        p = subprocess.run([sys.argv[5], '-s', SRV + ':7878', '-w', wl, '-a', '4', '-d', '2',
                            '--warmup', '0.5', '--timeout-ms', '20000', '--json',
                            '--no-progress'], capture_output=True, text=True)
        os.unlink(wl)
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout.strip().splitlines()[-1])
        print('aw-loadgen agent mix:', json.dumps(res)[:600])
        for op in ('tools', 'classify', 'embed', 'generate'):
            o = res['ops'][op]
            assert o['sent'] > 0 and o['err'] == 0 and o['ok'] == o['sent'], (op, o)
    g = group0_idle(d)
    assert g['running'] == 0 and g['sched_running'] == 0, g
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    os.unlink(qmodel)
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
print('ok')
