#!/usr/bin/env python3
"""dp-tap-malformed — garbage at every layer, injected through the tap:
L2/L3 junk on a raw AF_PACKET socket (bad ethertypes, IP options, fragments,
bad checksums and lengths, truncated frames, random bytes) and every
malformed datagram shape of the protocol on a UDP socket. Each is counted
under its reason (telemetry), nothing crashes, valid requests before and
after are served, and the daemon still exits 0 with every mbuf back."""
import os
import random
import socket
import struct
import subprocess
import sys

import awtest as aw

exe, conf = aw.need_root_and_build(sys.argv)
model = aw.model_file()
d = aw.Daemon(exe, conf, sets=['model.path=' + model])
ok = False


def csum(b):
    if len(b) % 2:
        b += b'\0'
    v = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while v >> 16:
        v = (v & 0xffff) + (v >> 16)
    return ~v & 0xffff


def ipv4(src, dst, proto, l4, ihl=5, frag=0x4000, ttl=64, fix=True, total=None):
    opts = b'\x01' * ((ihl - 5) * 4)
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, total or (ihl * 4 + len(l4)), 1, frag,
                    ttl, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)) + opts
    if fix:
        h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + l4


def udp(src, dst, sport, dport, payload, good=True):
    u = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 17, len(u))
    c = csum(ph + u) or 0xffff
    if not good:
        c ^= 0x1234
    return u[:6] + struct.pack('!H', c) + u[8:]


try:
    c = aw.Client()
    assert c.ping(b'before'), 'no PONG before'
    before = d.telemetry('/agentwire/stats')
    neigh = subprocess.run(['ip', 'neigh', 'show', aw.SRV_IP, 'dev', aw.TAP_IF],
                           capture_output=True, text=True).stdout.split()
    srv_mac = bytes.fromhex(neigh[neigh.index('lladdr') + 1].replace(':', ''))
    my_mac = bytes.fromhex(open('/sys/class/net/%s/address' % aw.TAP_IF).read().strip()
                           .replace(':', ''))
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((aw.TAP_IF, 0))
    eth = srv_mac + my_mac
    good_dgram = aw.hdr(aw.PING, 1, b'x')
    H, S = aw.HOST_IP, aw.SRV_IP
    THIRD = H.rsplit('.', 1)[0] + '.3'  # in the subnet, not the daemon's
    frames = {
        'ethertype': eth + b'\x86\xdd' + os.urandom(60),
        'dst_mac': b'\x02\x99\x99\x99\x99\x99' + my_mac + b'\x08\x00' +
        ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram)),
        'ip_options': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram),
                                               ihl=6),
        'ip_frag': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram),
                                            frag=0x2000),
        'ip_csum': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram),
                                            fix=False),
        'ip_len': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram),
                                           total=1400),
        'udp_csum': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT, good_dgram,
                                                           good=False)),
        'ip_proto': eth + b'\x08\x00' + ipv4(H, S, 6, os.urandom(20)),
        'ip_dst': eth + b'\x08\x00' + ipv4(H, THIRD, 17,
                                           udp(H, THIRD, 5000, aw.PORT, good_dgram)),
        'truncated': eth + b'\x08\x00' + b'\x45\x00',
        'udp_port': eth + b'\x08\x00' + ipv4(H, S, 17, udp(H, S, 5000, aw.PORT + 1, good_dgram)),
    }
    for name, f in frames.items():
        raw.send(f)
    # random garbage behind our Ethernet header, IPv4 and ARP ethertypes
    rnd = random.Random(1)
    for i in range(300):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
        raw.send(eth + (b'\x08\x00' if i % 2 else b'\x08\x06') + body)

    # protocol-level garbage over an ordinary UDP socket
    u = c.s
    shapes = [
        b'',                                              # empty datagram
        b'\x41\x57',                                      # truncated header
        aw.hdr(aw.PING, 2, b'x', magic=0x1234),           # wrong magic (no answer)
        aw.hdr(aw.PING, 3, b'x', version=9),              # wrong version -> ERROR VERSION
        aw.hdr(0x42, 4, b'x'),                            # unknown type
        aw.hdr(aw.PING, 5, b'xx')[:-1],                   # payload_len > datagram
        aw.hdr(aw.GENERATE, 6, b'abc', seg_index=3, seg_count=2, msg_len=6, seg_size=3),
        aw.hdr(aw.GENERATE, 7, b''),                      # zero-length request
        aw.hdr(aw.GENERATE, 8, b'not a body'),            # malformed body -> BAD_REQUEST
        aw.hdr(aw.DATA, 9, b'x'),                         # a reply type sent to us
    ]
    for sdata in shapes:
        u.sendto(sdata, c.addr)
    # segments of different sizes for one message, then a duplicate segment
    u.sendto(aw.hdr(aw.GENERATE, 10, b'a' * 100, seg_index=0, seg_count=3, msg_len=250,
                    seg_size=100), c.addr)
    u.sendto(aw.hdr(aw.GENERATE, 10, b'a' * 50, seg_index=1, seg_count=3, msg_len=250,
                    seg_size=50), c.addr)
    u.sendto(aw.hdr(aw.GENERATE, 11, b'a' * 100, seg_index=0, seg_count=3, msg_len=250,
                    seg_size=100), c.addr)
    u.sendto(aw.hdr(aw.GENERATE, 11, b'a' * 100, seg_index=0, seg_count=3, msg_len=250,
                    seg_size=100), c.addr)
    replies = {}
    while True:
        r = c.recv(0.5)
        if r is None:
            break
        replies.setdefault(r['request_id'], []).append(r)
    # answered: version (ERROR), bad body (ERROR BAD_REQUEST); not answered: magic
    assert 2 not in replies, replies.get(2)
    assert replies.get(3) and replies[3][0]['type'] == aw.ERROR, replies.get(3)
    code, msg = aw.error_of(replies[8][-1]['payload'])
    assert code == aw.ERR_BAD_REQUEST, (code, msg)

    # still serving, PING and GENERATE
    assert c.ping(b'after'), 'no PONG after the garbage'
    t, data, _ = c.call(aw.GENERATE, aw.gen_body('still alive', 3))
    assert t['type'] == aw.END, t
    after = d.telemetry('/agentwire/stats')
    for reason in ['ethertype', 'dst_mac', 'ip_options', 'ip_frag', 'ip_csum', 'ip_len',
                   'udp_csum', 'ip_proto', 'ip_dst', 'truncated', 'udp_port']:
        assert after['drops'][reason] > before['drops'][reason], (reason, after['drops'])
    for fault in ['truncated', 'magic', 'version', 'type', 'length', 'segment', 'segsize']:
        assert after['faults'][fault] > before['faults'][fault], (fault, after['faults'])
    # a duplicate segment is counted as a duplicate; empty and malformed bodies
    # are refused by the worker (BAD_REQUEST) and counted by its group
    assert after['duplicates'] > before['duplicates'], after
    assert d.telemetry('/agentwire/groups')['0']['bad_request'] >= 2
    assert after['proto_bad'] >= before['proto_bad'] + 7, after
    print('drops:', {k: v for k, v in after['drops'].items() if v})
    print('faults:', {k: v for k, v in after['faults'].items() if v})
    ok = True
finally:
    rc = d.stop()
    out = d.output()
    if not ok:
        print(out)
assert rc == 0, 'daemon exit %d\n%s' % (rc, out)
assert 'every mbuf returned to its pool' in out, out
print('ok')
