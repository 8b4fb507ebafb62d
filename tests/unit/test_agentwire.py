#!/usr/bin/env python3
"""test_agentwire.py — the pure-Python client (tools/python/agentwire.py)
against the real aw-echod binary, through a lossy relay, and against a
scripted server that sends malformed and contradictory replies.

    test_agentwire.py PATH/TO/aw-echod
"""
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tools", "python"))
import agentwire  # noqa: E402

ECHOD = None


def start_echod(*args):
    p = subprocess.Popen([ECHOD, "--port", "0", "--server-id", "5"] + list(args),
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(line.split(":")[-1].split()[0])
    return p, port


class Relay(threading.Thread):
    """Forwards client <-> server, dropping and reordering datagrams."""

    def __init__(self, server_port, drop=0.2, swap=0.3, seed=7):
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", server_port))
        self.rng = random.Random(seed)
        self.drop, self.swap = drop, swap
        self.dropped = self.swapped = 0
        self.quit = False
        self.client = None

    def stop(self):
        self.quit = True
        self.join()
        self.front.close()
        self.back.close()

    def run(self):
        import select
        held = None
        while not self.quit:
            r, _, _ = select.select([self.front, self.back], [], [], 0.002)
            if not r and held and self.client:
                self.front.sendto(held, self.client)
                held = None
            for s in r:
                if s is self.front:
                    d, self.client = self.front.recvfrom(65536)
                    if self.rng.random() < self.drop:
                        self.dropped += 1
                    else:
                        self.back.send(d)
                else:
                    d = self.back.recv(65536)
                    if self.client is None or self.rng.random() < self.drop:
                        self.dropped += 1
                        continue
                    if held is None and self.rng.random() < self.swap:
                        held = d
                        self.swapped += 1
                        continue
                    self.front.sendto(d, self.client)
                    if held:
                        self.front.sendto(held, self.client)
                        held = None


class TestAgainstEchod(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.port = start_echod()

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stdout.close()

    def test_ping_stats(self):
        with agentwire.Client("127.0.0.1", self.port) as c:
            self.assertGreater(c.ping(b"hello"), 0)
            c.ping(b"")
            big = bytes(random.Random(1).randrange(256) for _ in range(20000))
            c.ping(big)  # segmented request, DATA stream reply
            st = c.stats_dict()
            self.assertGreaterEqual(st["echod.pings"], 3)
            self.assertEqual(st["echod.server_id"], 5)
            self.assertEqual(c.last_server_id, 5)

    def test_refusals_name_the_problem(self):
        with agentwire.Client("127.0.0.1", self.port) as c:
            # a valid body (parsed by the C codec) is refused as unsupported
            with self.assertRaises(agentwire.AgentwireError) as e:
                c.generate("hello", max_new_tokens=8, stop=["\n"], temperature=0.5)
            self.assertEqual(e.exception.name, "UNSUPPORTED")
            with self.assertRaises(agentwire.AgentwireError) as e:
                c.classify("weather?", ["weather", "search"])
            self.assertEqual(e.exception.name, "UNSUPPORTED")
            # CLASSIFY without labels and a bad parameter are BAD_REQUEST
            with self.assertRaises(agentwire.AgentwireError) as e:
                c.classify("weather?", [])
            self.assertEqual(e.exception.name, "BAD_REQUEST")
            self.assertIn("LABEL", e.exception.message)
            with self.assertRaises(agentwire.AgentwireError) as e:
                c.generate("x", top_p=2.0)
            self.assertIn("top_p", e.exception.message)
            with self.assertRaises(agentwire.AgentwireError) as e:
                list(c.generate_stream("x", min_p=-1.0))
            self.assertIn("min_p", e.exception.message)

    def test_wrong_version_is_answered(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        d = bytearray(agentwire.build(agentwire.PING, 77, b"x"))
        d[2] = 9
        s.sendto(bytes(d), ("127.0.0.1", self.port))
        h, p = agentwire.parse_header(s.recv(65536))
        self.assertEqual(h["type"], agentwire.ERROR)
        self.assertEqual(h["request_id"], 77)
        self.assertEqual(struct.unpack_from("<H", p)[0], 10)  # VERSION
        s.close()

    def test_loss_recovery(self):
        relay = Relay(self.port)
        relay.start()
        try:
            with agentwire.Client("127.0.0.1", relay.port, rto=0.005, max_retries=12) as c:
                for i in range(10):
                    c.ping(bytes([i]) * 5000)
                    self.assertIn("rtx.bytes", c.stats())
                self.assertGreater(relay.dropped, 0)
                self.assertGreater(relay.swapped, 0)
                k = c.stats_counters
                self.assertGreater(k["retransmits"] + k["resumes"], 0)
        finally:
            relay.stop()


class TestSmallReplies(unittest.TestCase):
    """aw-echod with 300-byte replies: STATS spans many DATA datagrams, so a
    lossy path needs RESUME."""

    def test_resume(self):
        proc, port = start_echod("--mtu", "300")
        relay = Relay(port, drop=0.25, swap=0.3, seed=11)
        relay.start()
        try:
            with agentwire.Client("127.0.0.1", relay.port, rto=0.005, max_retries=12) as c:
                for _ in range(10):
                    self.assertIn("reasm.completed", c.stats())
                self.assertGreater(c.stats_counters["resumes"], 0)
        finally:
            relay.stop()
            proc.terminate()
            proc.wait()
            proc.stdout.close()


class TestUntrustedReplies(unittest.TestCase):
    def test_scripted(self):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]

        def serve():
            d, peer = srv.recvfrom(65536)
            h, _ = agentwire.parse_header(d)
            rid = h["request_id"]
            srv.sendto(b"AW", peer)  # truncated
            srv.sendto(b"ZZ" + agentwire.build(agentwire.DATA, rid, b"\0\0\0\0x")[2:], peer)
            srv.sendto(agentwire.build(agentwire.DATA, rid + 1, b"\0\0\0\0x"), peer)  # stray
            srv.sendto(agentwire.build(agentwire.DATA, rid, b"\1\0\0\0ab", seq=0), peer)
            end = agentwire.SUMMARY.pack(0, 0, 0, 1, 1, 0, 0, 0, 1, 99)  # claims 99 bytes
            srv.sendto(agentwire.build(agentwire.END, rid, end, seq=1), peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with agentwire.Client("127.0.0.1", port, rto=1.0) as c:
            with self.assertRaises(agentwire.ProtocolError):
                c.stats()
            self.assertEqual(c.stats_counters["bad"], 2)
            self.assertEqual(c.stats_counters["stray"], 1)
        t.join()
        srv.close()

    def test_cancel(self):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        seen = []

        def serve():
            d, peer = srv.recvfrom(65536)
            h, _ = agentwire.parse_header(d)
            rid = h["request_id"]
            srv.sendto(agentwire.build(agentwire.DATA, rid, b"\1\0\0\0tok", seq=0), peer)
            while True:  # until the CANCEL comes (skipping retransmissions)
                h, _ = agentwire.parse_header(srv.recv(65536))
                seen.append(h["type"])
                if h["type"] == agentwire.CANCEL and h["request_id"] == rid:
                    break
            end = agentwire.SUMMARY.pack(3, 0, 0, 5, 1, 0, 0, 0, 1, 3)  # cancelled
            srv.sendto(agentwire.build(agentwire.END, rid, end, seq=1), peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with agentwire.Client("127.0.0.1", port, rto=0.05) as c:
            gen = c.generate_stream("hello", max_new_tokens=100)
            self.assertEqual(next(gen), "tok")
            c.cancel()
            with self.assertRaises(StopIteration) as stop:
                next(gen)
            self.assertEqual(stop.exception.value.finish, "cancelled")
            with self.assertRaises(RuntimeError):
                c.cancel()  # nothing in progress any more
        t.join()
        self.assertIn(agentwire.CANCEL, seen)
        srv.close()

    def test_chat_tools_and_embed(self):
        """MESSAGES/TOOLS/TOOL_CHOICE/EMBED_OPTS encoded as PROTOCOL.md says;
        TOOL_CALL replies parsed and returned in order with the text."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        got = {}

        def tlvs(body):
            out, off = [], struct.unpack_from("<H", body)[0]
            while off < len(body):
                tag, _f, n = struct.unpack_from("<HHI", body, off)
                out.append((tag, body[off + 8:off + 8 + n]))
                off += 8 + n
            return out

        def serve():
            d, peer = srv.recvfrom(65536)
            h, body = agentwire.parse_header(d)
            got["chat"] = (h["type"], tlvs(body))
            rid = h["request_id"]
            srv.sendto(agentwire.build(agentwire.DATA, rid, b"\2\0\0\0Sure.", seq=0), peer)
            for i, (name, args) in enumerate([(b"get_weather", b'{"city": "Paris"}'),
                                              (b"time", b"{}")]):
                tc = struct.pack("<IHHI", 7, i, len(name), len(args)) + name + args
                srv.sendto(agentwire.build(agentwire.TOOL_CALL, rid, tc, seq=1 + i), peer)
            end = agentwire.SUMMARY.pack(5, 0, 0, 30, 16, 0, 0, 0, 3, 5)  # tool_calls
            srv.sendto(agentwire.build(agentwire.END, rid, end, seq=3), peer)
            # EMBED: check the options, answer three floats
            while True:
                d, peer = srv.recvfrom(65536)
                h, body = agentwire.parse_header(d)
                if h["type"] == agentwire.EMBED:
                    break
            got["embed"] = tlvs(body)
            rid = h["request_id"]
            vec = struct.pack("<3f", 0.5, -0.25, 1.0)
            srv.sendto(agentwire.build(agentwire.DATA, rid, b"\0\0\0\0" + vec, seq=0), peer)
            end = agentwire.SUMMARY.pack(0, 0, 0, 4, 0, 0, 0, 0, 1, 12)
            srv.sendto(agentwire.build(agentwire.END, rid, end, seq=1), peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        msgs = [{"role": "user", "content": "Weather in Paris? ünïcode"}]
        tools = [{"type": "function", "function": {"name": "get_weather"}}]
        with agentwire.Client("127.0.0.1", port, rto=0.5) as c:
            text, calls, summary = c.chat(msgs, tools=tools, tool_choice="get_weather")
            self.assertEqual(text, "Sure.")
            self.assertEqual([(k.name, k.arguments) for k in calls],
                             [("get_weather", {"city": "Paris"}), ("time", {})])
            self.assertEqual(summary.finish, "tool_calls")
            vec = c.embed("query", pooling="last", normalize=False)
            self.assertEqual(vec, [0.5, -0.25, 1.0])
        t.join()
        srv.close()
        typ, tl = got["chat"]
        self.assertEqual(typ, agentwire.GENERATE)
        tags = [tag for tag, _ in tl]
        self.assertNotIn(agentwire.TAG_PROMPT, tags)  # MESSAGES replaces it
        self.assertEqual(json.loads(dict(tl)[agentwire.TAG_MESSAGES].decode()), msgs)
        self.assertEqual(json.loads(dict(tl)[agentwire.TAG_TOOLS].decode()), tools)
        self.assertEqual(dict(tl)[agentwire.TAG_TOOL_CHOICE], b"\x03get_weather")
        self.assertEqual(dict(got["embed"])[agentwire.TAG_EMBED_OPTS], b"\x02\x00\x00\x00")
        # the defaults (mean, normalised) are not written
        body = agentwire.request_body("q")
        self.assertNotIn(agentwire.TAG_EMBED_OPTS, [tag for tag, _ in tlvs(body)])
        with self.assertRaises(agentwire.ProtocolError):
            agentwire.parse_tool_call(struct.pack("<IHHI", 1, 0, 0, 0))

    def test_tool_call_fragments(self):
        """A TOOL_CALL of ~5 KB arguments in 4 fragments (F_MORE on all but
        the last), out of order: one call; a run cut by END, or MORE on DATA:
        a ProtocolError naming the problem."""
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        name, args = b"write_file", json.dumps({"content": "a" * 5000}).encode()
        tc = struct.pack("<IHHI", 40, 0, len(name), len(args)) + name + args
        frags = [tc[i:i + 1400] for i in range(0, len(tc), 1400)]
        self.assertEqual(len(frags), 4)

        def serve():
            seen = set()
            for case in range(3):
                while True:  # the next new GENERATE (not an ACK or a retransmission)
                    d, peer = srv.recvfrom(65536)
                    h, _ = agentwire.parse_header(d)
                    if h["type"] == agentwire.GENERATE and h["request_id"] not in seen:
                        break
                rid = h["request_id"]
                seen.add(rid)
                if case == 0:
                    for i in (2, 0, 3, 1):
                        srv.sendto(agentwire.build(agentwire.TOOL_CALL, rid, frags[i], seq=i,
                                                   flags=agentwire.F_MORE if i < 3 else 0),
                                   peer)
                    end = agentwire.SUMMARY.pack(5, 0, 0, 3, 40, 0, 0, 0, 4, 0)
                    srv.sendto(agentwire.build(agentwire.END, rid, end, seq=4), peer)
                elif case == 1:
                    srv.sendto(agentwire.build(agentwire.TOOL_CALL, rid, frags[0], seq=0,
                                               flags=agentwire.F_MORE), peer)
                    end = agentwire.SUMMARY.pack(5, 0, 0, 3, 40, 0, 0, 0, 1, 0)
                    srv.sendto(agentwire.build(agentwire.END, rid, end, seq=1), peer)
                else:
                    srv.sendto(agentwire.build(agentwire.DATA, rid, b"\1\0\0\0x", seq=0,
                                               flags=agentwire.F_MORE), peer)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        msgs = [{"role": "user", "content": "write it"}]
        tools = [{"type": "function", "function": {"name": "write_file"}}]
        with agentwire.Client("127.0.0.1", port, rto=0.5) as c:
            text, calls, summary = c.chat(msgs, tools=tools, tool_choice="write_file")
            self.assertEqual(text, "")
            self.assertEqual([(k.name, k.arguments) for k in calls],
                             [("write_file", {"content": "a" * 5000})])
            self.assertEqual(summary.finish, "tool_calls")
            with self.assertRaisesRegex(agentwire.ProtocolError,
                                        r"^TOOL_CALL fragments missing: 1400 bytes so far, "
                                        r"then END \(seq 1\)$"):
                c.chat(msgs, tools=tools)
            with self.assertRaisesRegex(agentwire.ProtocolError,
                                        r"DATA datagram \(seq 0\) marked MORE"):
                c.chat(msgs, tools=tools)
        t.join()
        srv.close()

    def test_timeout(self):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        with agentwire.Client("127.0.0.1", srv.getsockname()[1], rto=0.002,
                              max_retries=3) as c:
            with self.assertRaises(agentwire.Timeout):
                c.ping(b"x")
            self.assertEqual(c.stats_counters["retransmits"], 3)
        srv.close()


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        print("usage: test_agentwire.py PATH/TO/aw-echod", file=sys.stderr)
        sys.exit(77)
    ECHOD = sys.argv.pop(1)
    unittest.main(verbosity=2)
