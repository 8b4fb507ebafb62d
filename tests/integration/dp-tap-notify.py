#!/usr/bin/env python3
"""dp-tap-notify — the daemon's systemd protocol, without systemd: this test
plays the service manager. It binds the NOTIFY_SOCKET datagram socket, sets
WATCHDOG_USEC, starts the real daemon on net_tap, and reads what libsystemd's
sd_notify() sends: STATUS= phases (EAL, model load, ports) before READY=1,
READY=1 only once the daemon serves (a PING answers right after), WATCHDOG=1
every half interval while every lcore's heartbeat moves, NO WATCHDOG=1 (and a
"stuck" STATUS) while the worker group is held in one token for longer than
the interval (the echo engine sleeps 0.9 s per token), the pings again once
it is free, and STOPPING=1 on SIGTERM. With JOURNAL_STREAM naming its
output, every log line of the daemon carries a "<N>" syslog level prefix. Skips (77) when the daemon was built
without libsystemd."""
import os
import re
import socket
import subprocess
import sys
import threading
import time

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
# built with libsystemd? (the daemon links it when meson found it)
ldd = subprocess.run(['ldd', exe], capture_output=True, text=True).stdout
if 'libsystemd' not in ldd:
    aw.skip('agentwire built without libsystemd (no sd_notify)')

WD_US = 400000
path = '/tmp/aw-notify-%d.sock' % os.getpid()
srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
srv.bind(path)
msgs = []  # (time, line)
lock = threading.Lock()
done = False


def reader():
    srv.settimeout(0.2)
    while not done:
        try:
            d = srv.recv(4096).decode()
        except socket.timeout:
            continue
        now = time.time()
        with lock:
            for line in d.split('\n'):
                if line:
                    msgs.append((now, line))


def lines(prefix, since=0.0):
    with lock:
        return [(t, m) for t, m in msgs if m.startswith(prefix) and t >= since]


th = threading.Thread(target=reader, daemon=True)
th.start()
env = {'NOTIFY_SOCKET': path, 'WATCHDOG_USEC': str(WD_US), 'AW_ENGINE': 'echo:900000'}
# journald mode: JOURNAL_STREAM names the daemon's output file (Daemon
# reopens it with 'w+': same inode)
prefix = 'aw-it-notify-%d' % os.getpid()
open('/tmp/%s.log' % prefix, 'w').close()
st = os.stat('/tmp/%s.log' % prefix)
env['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino)
# the config must validate (a model file), though the echo engine serves
d = aw.Daemon(exe, conf, sets=['model.path=' + aw.model_file()], env=env, prefix=prefix)
ok = False
try:
    c = aw.Client()
    assert c.ping(b'up'), 'no PONG after ready'
    time.sleep(0.3)
    ready = lines('READY=1')
    assert len(ready) == 1, msgs
    t_ready = ready[0][0]
    status = [m for t, m in lines('STATUS=') if t <= t_ready]
    assert any('EAL' in m for m in status), status
    assert any('loading model' in m and 'GiB)' in m for m in status), status
    assert any(m.startswith('STATUS=serving') for t, m in lines('STATUS=')), msgs
    # idle: the lcores loop, the watchdog is fed every WD/2
    t0 = time.time()
    time.sleep(2.0)
    fed = lines('WATCHDOG=1', since=t0)
    assert len(fed) >= 3, ('too few WATCHDOG=1 while idle', len(fed))
    # hold the worker in a 0.9 s token, three times: its heartbeat stops
    t1 = time.time()
    c.send(aw.hdr(aw.GENERATE, c.rid(), aw.gen_body('alpha beta gamma', 3)))
    time.sleep(3.5)
    stuck = lines('STATUS=stuck', since=t1)
    assert stuck, ('no stuck STATUS while the worker slept', msgs[-10:])
    fed = [t for t, _ in lines('WATCHDOG=1', since=t1)]
    gaps = [b - a for a, b in zip([t1] + fed, fed + [time.time()])]
    assert max(gaps) > WD_US / 1e6, ('the watchdog was fed throughout', gaps)
    out = d.output()
    assert re.search(r'^<3>agentwire: daemon: .*heartbeat still', out, re.M), out[-2000:]
    assert re.search(r'^<5>agentwire: daemon: ready:', out, re.M), out[-2000:]
    # every line of ours carries its level, none a timestamp
    ours = [ln for ln in out.splitlines() if 'agentwire: ' in ln]
    assert ours and all(re.match(r'<[0-7]>agentwire: ', ln) for ln in ours), ours
    # free again: fed again
    t2 = time.time()
    time.sleep(1.5)
    assert len(lines('WATCHDOG=1', since=t2)) >= 2, 'watchdog not fed after the stall'
    rc = d.stop()
    assert rc == 0, (rc, d.output()[-2000:])
    time.sleep(0.3)
    assert lines('STOPPING=1'), msgs[-5:]
    ok = True
finally:
    done = True
    if not ok:
        d.stop()
        print(d.output()[-3000:])
    os.unlink(path)
print('ok')
