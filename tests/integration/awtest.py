"""awtest.py — helpers for the dataplane integration tests (standard library only).

Starts the real `agentwire` daemon on a net_tap virtual NIC, configures the
kernel side of the tap, and speaks the wire protocol (docs/PROTOCOL.md) over
ordinary kernel UDP sockets: enough of a client to check the daemon's
behaviour byte for byte (PING, GENERATE streams with loss recovery, errors).
"""
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time

MAGIC = 0x5741
HDR = struct.Struct('<HBBHHQQIHHIHHII16s')  # 64 bytes
assert HDR.size == 64

GENERATE, CLASSIFY, EMBED, CANCEL, PING, STATS, RESUME, ACK = 1, 2, 3, 4, 5, 6, 7, 8
DATA, END, ERROR, PONG, PROGRESS = 0x81, 0x82, 0x83, 0x84, 0x85
ERR_BAD_REQUEST, ERR_TOO_LONG, ERR_OVERLOADED, ERR_UNKNOWN_REQUEST = 1, 2, 3, 8

# a tap and a /24 of its own per test process, so that integration runs that
# overlap on one machine (several checkouts, CI beside a developer) never
# answer each other's traffic; tests may set their own before starting the
# daemon, and Daemon() points [port 0] at them unless the test sets port.0.*
NET = 1 + os.getpid() % 250
TAP_IF = 'awt%d' % NET
HOST_IP = '10.101.%d.1' % NET
SRV_IP = '10.101.%d.2' % NET
PORT = 7878


def port_sets():
    """--set values that put the daemon's [port 0] on TAP_IF / SRV_IP."""
    return ['port.0.device=net_tap0,iface=' + TAP_IF, 'port.0.address=%s/24' % SRV_IP]


def skip(msg):
    print('SKIP: ' + msg)
    sys.exit(77)


TOOLS = {}


def need_root_and_build(argv):
    """argv: test.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER"""
    if os.geteuid() != 0:
        skip('needs root (net_tap)')
    if len(argv) < 5:
        skip('usage: test.py AGENTWIRE CONFIG AW-MKMODEL AW-INFER')
    if not os.path.exists('/dev/net/tun'):
        skip('no /dev/net/tun')
    TOOLS['mkmodel'], TOOLS['infer'] = argv[3], argv[4]
    return argv[1], argv[2]


def model_file():
    """A small llama model with a synthetic SentencePiece vocabulary, written
    by aw-mkmodel (seeded: the same file every time)."""
    import atexit
    path = '/tmp/aw-it-model-%d.gguf' % os.getpid()
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    subprocess.run([TOOLS['mkmodel'], '--out', path, '--preset', 'tiny', '--seed', '7'],
                   check=True, stdout=subprocess.DEVNULL)
    return path


def expect_generate(model, prompt, n):
    """Greedy output of aw-infer for the same model and prompt, or None when
    this aw-infer cannot take a text prompt (no tokenizer built in)."""
    p = subprocess.run([TOOLS['infer'], '-m', model, '-p', prompt, '-n', str(n), '--temp', '0'],
                       capture_output=True)
    if p.returncode != 0:
        print('note: aw-infer -p unavailable (%s): greedy comparison skipped'
              % p.stderr.decode(errors='replace').strip()[:120])
        return None
    return p.stdout[:-1] if p.stdout.endswith(b'\n') else p.stdout


def raw_icmp_echo(ip, payload=b'agentwire-icmp'):
    """One ICMP echo over a raw socket; True when the matching reply came."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(2)
    ident = os.getpid() & 0xffff

    def csum(b):
        if len(b) % 2:
            b += b'\0'
        v = sum(struct.unpack('!%dH' % (len(b) // 2), b))
        while v >> 16:
            v = (v & 0xffff) + (v >> 16)
        return ~v & 0xffff
    m = struct.pack('!BBHHH', 8, 0, 0, ident, 1) + payload
    m = m[:2] + struct.pack('!H', csum(m)) + m[4:]
    s.sendto(m, (ip, 0))
    t0 = time.time()
    while time.time() - t0 < 2:
        try:
            d, a = s.recvfrom(2048)
        except socket.timeout:
            break
        icmp = d[(d[0] & 0xf) * 4:]
        if a[0] == ip and icmp[0] == 0 and struct.unpack('!H', icmp[4:6])[0] == ident:
            return icmp[8:] == payload
    return False


def hdr(typ, request_id, payload=b'', seq=0, seg_index=0, seg_count=1, msg_len=None,
        seg_size=None, session_id=0, version=1, magic=MAGIC):
    n = len(payload)
    return HDR.pack(magic, version, typ, 0, 0, request_id, session_id, seq, seg_index,
                    seg_count, n if msg_len is None else msg_len, n,
                    n if seg_size is None else seg_size, 0, 0, b'\0' * 16) + payload


def parse(dgram):
    if len(dgram) < 64:
        raise ValueError('short reply')
    (magic, ver, typ, flags, sid, rid, sess, seq, si, sc, ml, pl, ss, ten, res,
     mac) = HDR.unpack_from(dgram)
    if magic != MAGIC or pl != len(dgram) - 64:
        raise ValueError('bad reply header')
    return {'type': typ, 'request_id': rid, 'seq': seq, 'payload': dgram[64:]}


def gen_body(prompt, max_new_tokens=0, temperature=0.0, deadline_us=0, seed=0):
    fixed = struct.pack('<HBBIfIfffIQ', 40, 0, 0, max_new_tokens, temperature, 0, 1.0, 0.0,
                        1.0, deadline_us, seed)
    p = prompt.encode()
    return fixed + struct.pack('<HHI', 1, 0, len(p)) + p


def error_of(payload):
    code, mlen, retry = struct.unpack_from('<HHI', payload)
    return code, payload[8:8 + mlen].decode(errors='replace')


class Daemon:
    """The real daemon on net_tap, with the kernel end of the tap set up."""

    def __init__(self, exe, conf, sets=(), env=None, prefix=None):
        self.prefix = prefix or 'aw-it-%d' % os.getpid()
        args = [exe, '-c', conf, '--set', 'eal.file_prefix=' + self.prefix]
        if not any(s.startswith('port.0.') for s in sets):
            sets = port_sets() + list(sets)
        for s in sets:
            args += ['--set', s]
        e = dict(os.environ)
        e.update(env or {})
        self.log = open('/tmp/%s.log' % self.prefix, 'w+')
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError('daemon exited %d:\n%s' % (self.p.returncode, self.output()))
            if 'ready:' in self.output():
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError('daemon not ready:\n' + self.output())
        subprocess.run(['ip', 'addr', 'replace', HOST_IP + '/24', 'dev', TAP_IF], check=True)
        subprocess.run(['ip', 'link', 'set', TAP_IF, 'up'], check=True)
        # no IPv6 chatter on the tap (it would only be counted as drops)
        subprocess.run(['sysctl', '-q', '-w', 'net.ipv6.conf.%s.disable_ipv6=1' % TAP_IF],
                       check=False)

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the daemon and return its exit status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return -9
        return self.p.returncode

    def group(self, n=0):
        """Worker group n's counters (/agentwire/groups)."""
        return self.telemetry('/agentwire/groups')[str(n)]

    def group_idle(self, n=0, timeout=10.0):
        """Group n's counters once its scheduler holds no sequence. The leader
        publishes them after each step, while the last END leaves inside the
        step: a client that saw every END may read them a moment early."""
        t0 = time.time()
        while True:
            g = self.group(n)
            if (g['running'] == 0 and g['sched_running'] == 0) or time.time() - t0 > timeout:
                return g
            time.sleep(0.05)

    def telemetry(self, cmd):
        """Read one rte_telemetry command as a dict (None when unavailable)."""
        import json
        path = '/var/run/dpdk/%s/dpdk_telemetry.v2' % self.prefix
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            json.loads(s.recv(65536).decode())  # greeting
            s.send(cmd.encode())
            return json.loads(s.recv(1 << 20).decode()).get(cmd)
        finally:
            s.close()


class Client:
    """One UDP socket talking to the daemon, with retransmission and RESUME."""

    def __init__(self, host=None, port=PORT, timeout=0.2, loss=0.0, seed=1):
        # 'loss': drop this fraction of datagrams sent and received in the
        # client itself (for kernels without sch_netem)
        self.loss = loss
        self.rnd = random.Random(seed)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((HOST_IP, 0))
        self.addr = (host or SRV_IP, port)
        self.timeout = timeout
        self.next_id = random.getrandbits(48) + 1

    def rid(self):
        self.next_id += 1
        return self.next_id

    def send(self, data):
        if self.loss and self.rnd.random() < self.loss:
            return
        self.s.sendto(data, self.addr)

    def recv(self, timeout=None):
        self.s.settimeout(self.timeout if timeout is None else timeout)
        try:
            while True:
                d, _ = self.s.recvfrom(65536)
                if not (self.loss and self.rnd.random() < self.loss):
                    return parse(d)
        except socket.timeout:
            return None

    def ping(self, payload=b'ping', tries=20):
        rid = self.rid()
        for _ in range(tries):
            self.send(hdr(PING, rid, payload))
            t0 = time.time()
            while time.time() - t0 < self.timeout:
                r = self.recv()
                if r and r['request_id'] == rid:
                    return r
        return None

    def call(self, typ, body, tries=50, rid=None, segsize=None):
        """Send a request (segmented when segsize is given) and collect its
        whole response: returns (terminal reply, concatenated DATA bytes,
        list of DATA n_tokens). Repairs loss with retransmit and RESUME."""
        rid = rid or self.rid()
        dgrams = []
        if segsize:
            n = (len(body) + segsize - 1) // segsize
            for i in range(n):
                part = body[i * segsize:(i + 1) * segsize]
                dgrams.append(hdr(typ, rid, part, seg_index=i, seg_count=n, msg_len=len(body),
                                  seg_size=segsize))
        else:
            dgrams.append(hdr(typ, rid, body))
        got = {}
        terminal = None
        for _ in range(tries):
            if not got and terminal is None:
                for d in dgrams:
                    self.send(d)
            else:
                # ask for the first missing datagram
                want = 0
                while want in got:
                    want += 1
                self.send(hdr(RESUME, rid, seq=want))
            t0 = time.time()
            while time.time() - t0 < self.timeout:
                r = self.recv()
                if not r or r['request_id'] != rid:
                    continue
                t0 = time.time()
                if r['type'] == PROGRESS:
                    continue
                got[r['seq']] = r
                if r['type'] in (END, ERROR):
                    terminal = r
                if terminal is not None and all(s in got for s in range(terminal['seq'])):
                    data = b''.join(got[s]['payload'][4:] for s in range(terminal['seq']))
                    toks = [struct.unpack_from('<I', got[s]['payload'])[0]
                            for s in range(terminal['seq'])]
                    self.send(hdr(ACK, rid))
                    return terminal, data, toks
        raise TimeoutError('request %d: no complete response (%d datagrams)' % (rid, len(got)))


def summary(payload):
    (finish, model, n_probs, pt, gt, q, pf, dc, n_data, data_bytes) = struct.unpack_from(
        '<BBHIIIIIIQ', payload)
    return {'finish': finish, 'prompt_tokens': pt, 'gen_tokens': gt, 'n_data': n_data,
            'data_bytes': data_bytes, 'queue_us': q, 'model': model}


def echo_expect(prompt, max_new_tokens):
    """What the echo test engine answers (engine-echo.c): the prompt's words,
    each with the blanks that follow it, up to max_new_tokens."""
    words = re.findall(r' *[^ ]+ *', prompt)
    return ''.join(words[:max_new_tokens]), min(len(words), max_new_tokens)
