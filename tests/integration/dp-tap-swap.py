#!/usr/bin/env python3
"""dp-tap-swap — live model swap and config reload (SIGHUP) under load.

The real daemon on net_tap serves model A (aw-mkmodel tiny, seed 7) from a
config file of its own. While aw-loadgen runs open-loop and two socket
clients send greedy GENERATE requests back to back, the test points the
file's [model] path at model B (seed 8) and sends SIGHUP. It checks that:

  - no request fails or is lost: every client request ends with END, and
    aw-loadgen counts zero errors and every request answered;
  - each response is model A's or model B's greedy text (aw-infer computes
    both offline), responses completed before the SIGHUP are A's and those
    sent after the daemon logged the swap are B's;
  - a reload to a missing model file and a reload of a config with an error
    change nothing (B keeps serving, the log says why), a changed limit
    applies in place and a changed restart-only key is named in the log;
  - the daemon stops cleanly (every mbuf returned).

Uses its own tap (aws0, 10.95.0.0/24): other worktrees' suites may run the
aw0 tests on this machine at the same time.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import awtest as aw

exe, base_conf = aw.need_root_and_build(sys.argv)
aw.TAP_IF, aw.HOST_IP, aw.SRV_IP = 'aws0', '10.95.0.1', '10.95.0.2'
if len(sys.argv) < 6:
    aw.skip('usage: dp-tap-swap.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER AW-LOADGEN')
loadgen = sys.argv[5]

model_a = aw.model_file()  # tiny, seed 7
model_b = '/tmp/aw-it-model-b-%d.gguf' % os.getpid()
subprocess.run([aw.TOOLS['mkmodel'], '--out', model_b, '--preset', 'tiny', '--seed', '8'],
               check=True, stdout=subprocess.DEVNULL)

PROMPT = 'Call the weather tool for Paris and then summarise the answer'
N = 8
exp_a = aw.expect_generate(model_a, PROMPT, N)
exp_b = aw.expect_generate(model_b, PROMPT, N)
if exp_a is None or exp_b is None:
    aw.skip('aw-infer cannot take a text prompt here: responses cannot be told apart')
assert exp_a != exp_b, 'models A and B answer alike: the test cannot tell them apart'

with open(base_conf) as f:
    base = f.read()
conf_fd, conf = tempfile.mkstemp(prefix='aw-it-swap-', suffix='.conf')
bad_model = conf + '.bad.gguf'
os.close(conf_fd)


def write_conf(model, extra='', max_new=None):
    text = re.sub(r'(?m)^path = .*$', 'path = ' + model, base)
    text = text.replace('iface=aw0', 'iface=' + aw.TAP_IF)
    text = text.replace('address = 10.99.0.2/24', 'address = %s/24' % aw.SRV_IP)
    text = text.replace('[limits]\n', '[limits]\n' + extra)
    if max_new is not None:
        text = re.sub(r'(?m)^max_new_tokens = .*$', 'max_new_tokens = %d' % max_new, text)
    tmp = conf + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.rename(tmp, conf)  # atomic: a reload never reads half a file


def wait_log(d, needle, count=1, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if d.output().count(needle) >= count:
            return True
        time.sleep(0.05)
    raise AssertionError('no %r in the log:\n%s' % (needle, d.output()))


# systemd's status line (sd_notify STATUS=): the load's progress, when the
# daemon has libsystemd
notify_path = '/tmp/aw-swap-notify-%d.sock' % os.getpid()
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(notify_path)
status = []


def notify_reader():
    nsock.settimeout(0.2)
    while True:
        try:
            status.extend(m for m in nsock.recv(4096).decode().split('\n')
                          if m.startswith('STATUS='))
        except socket.timeout:
            continue
        except OSError:
            return


threading.Thread(target=notify_reader, daemon=True).start()
has_systemd = 'libsystemd' in subprocess.run(['ldd', exe], capture_output=True,
                                             text=True).stdout

write_conf(model_a)
d = aw.Daemon(exe, conf, env={'NOTIFY_SOCKET': notify_path})
ok = False
results = []  # (t_sent, t_done, terminal type, data, summary)
lock = threading.Lock()
stop = threading.Event()


def client_loop(seed):
    c = aw.Client(host=aw.SRV_IP, seed=seed)
    while not stop.is_set():
        t0 = time.time()
        t, data, _ = c.call(aw.GENERATE, aw.gen_body(PROMPT, N))
        s = aw.summary(t['payload']) if t and t['type'] == aw.END else None
        with lock:
            results.append((t0, time.time(), t['type'] if t else None, data, s))
        time.sleep(0.01)  # steady load, not a flood: the machine is shared


try:
    # warm: model A answers
    c = aw.Client(host=aw.SRV_IP)
    t, data, _ = c.call(aw.GENERATE, aw.gen_body(PROMPT, N))
    assert t['type'] == aw.END and data == exp_a, (t, data, exp_a)

    wl = tempfile.NamedTemporaryFile('w', suffix='.wl', delete=False)
    wl.write('mix = ping:1 generate:1\nprompt_tokens = fixed:16\nmax_new_tokens = fixed:4\n')
    wl.close()
    lg = subprocess.Popen([loadgen, '-s', '%s:%d' % (aw.SRV_IP, aw.PORT), '-w', wl.name,
                           '-r', '20', '--arrival', 'constant', '-d', '6', '--warmup', '0',
                           '--timeout-ms', '30000',
                           '--json', '--no-progress'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=client_loop, args=(i + 1,)) for i in range(2)]
    for th in threads:
        th.start()

    time.sleep(1.5)
    write_conf(model_b)
    t_hup = time.time()
    d.p.send_signal(signal.SIGHUP)
    wait_log(d, 'is serving (generation 2)')
    t_swapped = time.time()
    print('swap: %.3f s from SIGHUP to the new model serving' % (t_swapped - t_hup))
    tm = d.telemetry('/agentwire/model')
    assert tm['path'] == model_b and tm['generation'] == 2, tm  # not the old path
    time.sleep(1.5)
    wait_log(d, 'its memory is freed')

    # a reload to a missing file: the config check refuses it
    write_conf('/nonexistent/model.gguf')
    d.p.send_signal(signal.SIGHUP)
    wait_log(d, 'unchanged')
    # a corrupt model file: the load fails, the old model (B) keeps serving
    with open(bad_model, 'wb') as f:
        f.write(b'GGUF' + os.urandom(256 * 1024))
    write_conf(bad_model)
    d.p.send_signal(signal.SIGHUP)
    wait_log(d, 'the old model keeps serving')
    # a config with an error: nothing changes (asked through telemetry when
    # it is on, else SIGHUP)
    write_conf(model_b, 'no_such_key = 1\n')
    rl = d.telemetry('/agentwire/reload')
    if rl is None:
        d.p.send_signal(signal.SIGHUP)
    else:
        assert rl['reload'] == 'requested', rl
    wait_log(d, 'unchanged', 2)
    # a limit in place, and a key that needs a restart
    write_conf(model_b, max_new=3)
    text = open(conf).read().replace('[dataplane]\n', '[dataplane]\nburst = 16\n')
    with open(conf, 'w') as f:
        f.write(text)
    t_limit_hup = time.time()
    d.p.send_signal(signal.SIGHUP)
    wait_log(d, 'max_new_tokens = 3')
    assert re.search(r'needs? a restart.*\[dataplane\] burst', d.output()), d.output()
    t_limit = time.time()
    time.sleep(0.5)

    stop.set()
    for th in threads:
        th.join(60)
    out, err = lg.communicate(timeout=120)
    os.unlink(wl.name)
    assert lg.returncode == 0, err
    r = json.loads(out)
    for op in ('ping', 'generate'):
        o = r['ops'][op]
        assert o['sent'] > 0 and o['ok'] == o['sent'] and o['err'] == 0, (op, o)
    print('aw-loadgen through the swap: %d PINGs, %d GENERATEs, 0 errors'
          % (r['ops']['ping']['ok'], r['ops']['generate']['ok']))

    # every client request ended well and came from A or B
    n_a = n_b = 0
    for t0, t1, typ, data, s in results:
        assert typ == aw.END, (typ, data)
        if t1 > t_limit_hup:  # B, maybe cut at the reloaded limit
            assert exp_b.startswith(data), data
            assert t0 < t_limit or s['gen_tokens'] <= 3, s
            assert s['model'] == 2, s  # the END summary names the model
            continue
        assert data in (exp_a, exp_b), (data, exp_a, exp_b, t0 - t_hup, t1 - t_hup, s)
        if t1 < t_hup:
            assert data == exp_a, ('before the swap', data)
        if t0 > t_swapped:
            assert data == exp_b, ('after the swap', data)
        # every response says which model served it (END summary, generation)
        assert s['model'] == (1 if data == exp_a else 2), (data, s)
        n_a += data == exp_a
        n_b += data == exp_b
    if not n_b:
        import collections
        print(collections.Counter((round(t0 - t_hup, 1), data) for t0, t1, typ, data, s in results if t0 > t_hup - 0.2 and t0 < t_hup + 0.5))
        print(exp_a, exp_b)
    assert n_a > 0 and n_b > 0, (n_a, n_b)
    print('clients: %d responses, %d from model A, %d from model B (each END named its '
          'model), 0 errors'
          % (len(results), n_a, n_b))
    t, data, _ = c.call(aw.GENERATE, aw.gen_body(PROMPT, 0))
    assert t['type'] == aw.END and aw.summary(t['payload'])['gen_tokens'] <= 3
    if has_systemd:  # phase, percent and GB/s of both loads
        assert any(m.startswith('STATUS=loading model ' + model_a) and '100.0%' in m and
                   'GB/s' in m for m in status), status
        assert any(m.startswith('STATUS=serving; loading new model ' + model_b) and
                   '100.0%' in m for m in status), status
        assert any(m.startswith('STATUS=serving: model %s (generation 2)' % model_b)
                   for m in status), status
    m = d.telemetry('/agentwire/model')
    if m is not None:  # telemetry on: the model it describes is the new one
        assert m['describe'].startswith('{"generation": 2,'), m
    ok = True
finally:
    stop.set()
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
    nsock.close()
    for p in (conf, model_b, bad_model, notify_path):
        if os.path.exists(p):
            os.unlink(p)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
