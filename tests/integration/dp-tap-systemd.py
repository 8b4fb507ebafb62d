#!/usr/bin/env python3
"""dp-tap-systemd — the daemon under the real systemd, as a transient unit
(systemd-run) with the settings of agentwire@.service that matter here:
Type=notify, WatchdogSec=, Restart=on-failure, LimitMEMLOCK=infinity and the
capability bounding set. systemd-run returns once the start job is done,
which for Type=notify means READY=1: the unit must then be active with a
"serving" status text, answer a PING at once, have logged through the
journal with priorities, and stop cleanly (Result=success). Skips (77)
where systemd is not PID 1 (containers) or the daemon lacks libsystemd."""
import os
import subprocess
import sys
import time

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
if not os.path.isdir('/run/systemd/system'):
    aw.skip('systemd is not running (no /run/systemd/system)')
if 'libsystemd' not in subprocess.run(['ldd', exe], capture_output=True, text=True).stdout:
    aw.skip('agentwire built without libsystemd (no sd_notify)')

unit = 'aw-it-sd-%d' % os.getpid()
model = aw.model_file()
os.chmod(model, 0o644)
props = ['Type=notify', 'NotifyAccess=main', 'WatchdogSec=10s', 'Restart=on-failure',
         'LimitMEMLOCK=infinity', 'CapabilityBoundingSet=CAP_IPC_LOCK CAP_NET_ADMIN',
         'TimeoutStartSec=120s']
cmd = ['systemd-run', '--unit', unit, '--quiet']
for p in props:
    cmd += ['--property', p]
cmd += ['--setenv', 'AW_ENGINE=echo', '--', os.path.abspath(exe), '-c', os.path.abspath(conf),
        '--set', 'model.path=' + model, '--set', 'eal.file_prefix=' + unit]
for s in aw.port_sets():  # the tap and subnet of this process
    cmd += ['--set', s]


def show(*keys):
    out = subprocess.run(['systemctl', 'show', unit] + ['--property=' + k for k in keys],
                         capture_output=True, text=True).stdout
    return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)


ok = False
try:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr
    st = show('ActiveState', 'SubState', 'StatusText', 'WatchdogUSec')
    assert st['ActiveState'] == 'active', st
    assert st['StatusText'].startswith('serving'), st
    subprocess.run(['ip', 'addr', 'replace', aw.HOST_IP + '/24', 'dev', aw.TAP_IF], check=True)
    subprocess.run(['ip', 'link', 'set', aw.TAP_IF, 'up'], check=True)
    c = aw.Client()
    assert c.ping(b'under systemd'), 'no PONG from the unit'
    time.sleep(12)  # longer than WatchdogSec: the pings kept it alive
    assert show('ActiveState')['ActiveState'] == 'active', 'watchdog killed a healthy daemon'
    j = subprocess.run(['journalctl', '-u', unit, '-o', 'cat', '-p', 'notice', '--no-pager'],
                       capture_output=True, text=True).stdout
    assert 'ready:' in j, j[-2000:]
    subprocess.run(['systemctl', 'stop', unit], check=True, timeout=90)
    st = show('Result', 'ExecMainStatus')
    assert st['Result'] == 'success' and st['ExecMainStatus'] == '0', st
    ok = True
finally:
    if not ok:
        print(subprocess.run(['journalctl', '-u', unit, '--no-pager', '-n', '60'],
                             capture_output=True, text=True).stdout)
    subprocess.run(['systemctl', 'stop', unit], capture_output=True)
    subprocess.run(['systemctl', 'reset-failed', unit], capture_output=True)
print('ok')
