"""agentwire — pure-Python client for the agentwire UDP protocol (standard
library only: socket + struct). docs/PROTOCOL.md is the specification; this
module is an independent implementation of its client side, so it doubles as
a check of the spec against the C codec.

    import agentwire
    c = agentwire.Client("127.0.0.1", 7878)
    rtt = c.ping(b"hello")                      # seconds
    text, summary = c.generate("Pick a tool for: weather in Paris?",
                               max_new_tokens=32, temperature=0.0)
    for chunk in c.generate_stream("..."):     # str chunks as they arrive
        print(chunk, end="")
    probs = c.classify("weather in Paris?", ["weather", "search"])
    vec = c.embed("query: pasta", pooling="mean", normalize=True)
    text, calls, summary = c.chat(
        [{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        tool_choice="auto")                     # calls: [ToolCall(name, arguments)]
    print(c.stats())

Loss handling follows the spec: the request is retransmitted when nothing
came back, a gap in the reply sequence triggers RESUME from the first
missing datagram, duplicates are dropped, and every reply is checked field by
field before use (a malformed reply is ignored and counted, a summary that
contradicts the data raises ProtocolError). One request at a time per Client.
"""

import json
import os
import socket
import struct
import time

MAGIC = 0x5741
VERSION = 1
HDR = struct.Struct("<HBBHHQQIHHIHHII16s")  # 64 bytes, see docs/PROTOCOL.md
assert HDR.size == 64

GENERATE, CLASSIFY, EMBED, CANCEL, PING, STATS, RESUME, ACK = range(1, 9)
DATA, END, ERROR, PONG, PROGRESS, TOOL_CALL = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86
TYPE_NAMES = {DATA: "DATA", END: "END", ERROR: "ERROR", PONG: "PONG", PROGRESS: "PROGRESS",
              TOOL_CALL: "TOOL_CALL"}
F_RETRANSMIT, F_CONTROL, F_MORE = 0x0002, 0x0004, 0x0008
MAX_REPLY_MSG = 1 << 20  # longest reassembled reply payload (reply fragments)

ERROR_NAMES = {1: "BAD_REQUEST", 2: "TOO_LONG", 3: "OVERLOADED", 4: "UNKNOWN_SESSION",
               5: "DEADLINE", 6: "INTERNAL", 7: "UNSUPPORTED", 8: "UNKNOWN_REQUEST",
               9: "AUTH", 10: "VERSION"}
FINISH_NAMES = ["stop", "length", "deadline", "cancelled", "error", "tool_calls"]

TAG_PROMPT, TAG_STOP, TAG_LABEL = 1, 2, 3
TAG_MESSAGES, TAG_TOOLS, TAG_RESPONSE_FORMAT, TAG_TOOL_CHOICE, TAG_EMBED_OPTS = 4, 5, 6, 7, 8
TOOL_CHOICES = {"auto": 0, "none": 1, "required": 2}
POOLINGS = {"mean": 0, "cls": 1, "last": 2}
REQF_KEEP_SESSION, REQF_CONTINUE = 0x01, 0x02
ERR_UNKNOWN_SESSION = 4
FIXED = struct.Struct("<HBBIfIfffIQ")  # 40 bytes
assert FIXED.size == 40
SUMMARY = struct.Struct("<BBHIIIIIIQ")  # 36 bytes
assert SUMMARY.size == 36


class AgentwireError(Exception):
    """The server answered ERROR: .code (int), .name, .message, .retry_after_us."""

    def __init__(self, code, message, retry_after_us=0):
        self.code = code
        self.name = ERROR_NAMES.get(code, "?")
        self.message = message
        self.retry_after_us = retry_after_us
        super().__init__("%s (%d): %s" % (self.name, code, message))


class ProtocolError(Exception):
    """The replies contradicted each other or the specification."""


class Timeout(Exception):
    """No (complete) answer within the limits."""


class Cancelled(Exception):
    """cancel() reached a server that did not hold the request (any more)."""


class ToolCall:
    """One tool call of a response: .name (str), .arguments (dict, parsed from
    the JSON the server sent), .index, .n_tokens."""

    def __init__(self, index, name, arguments, n_tokens):
        self.index = index
        self.name = name
        self.arguments = arguments
        self.n_tokens = n_tokens

    def __repr__(self):
        return "ToolCall(%r, %r)" % (self.name, self.arguments)


def parse_tool_call(p):
    """Decode a TOOL_CALL payload (raises ProtocolError)."""
    if len(p) < 12:
        raise ProtocolError("TOOL_CALL payload of %d bytes" % len(p))
    n_tokens, index, name_len, args_len = struct.unpack_from("<IHHI", p)
    if not 1 <= name_len <= 64 or len(p) != 12 + name_len + args_len:
        raise ProtocolError("TOOL_CALL with a %d-byte name and %d-byte arguments in %d bytes"
                            % (name_len, args_len, len(p)))
    try:
        name = p[12:12 + name_len].decode()
        args = json.loads(p[12 + name_len:].decode())
    except ValueError as e:
        raise ProtocolError("TOOL_CALL: %s" % e)
    return ToolCall(index, name, args, n_tokens)


class Summary:
    """The END summary of a request."""

    def __init__(self, finish, prompt_tokens, gen_tokens, queue_us, prefill_us, decode_us,
                 n_data, data_bytes, probs, model=0):
        self.finish = FINISH_NAMES[finish]
        self.model = model  # generation of the model that served it (0: not said)
        self.prompt_tokens = prompt_tokens
        self.gen_tokens = gen_tokens
        self.queue_us = queue_us
        self.prefill_us = prefill_us
        self.decode_us = decode_us
        self.n_data = n_data
        self.data_bytes = data_bytes
        self.probs = probs

    def __repr__(self):
        return "Summary(%s)" % ", ".join("%s=%r" % kv for kv in sorted(vars(self).items()))


def parse_header(dg):
    """Decode and validate one datagram's header (the rules of PROTOCOL.md).
    Returns a dict and the payload, or raises ValueError naming the rule."""
    if len(dg) < 64:
        raise ValueError("truncated")
    (magic, version, typ, flags, server_id, request_id, session_id, seq, seg_index,
     seg_count, msg_len, payload_len, seg_size, tenant_id, _reserved, mac) = HDR.unpack_from(dg)
    if magic != MAGIC:
        raise ValueError("magic")
    if version != VERSION:
        raise ValueError("version")
    if not (1 <= typ <= 8 or 0x81 <= typ <= 0x86):
        raise ValueError("type")
    if payload_len != len(dg) - 64:
        raise ValueError("length")
    if seg_count == 0 or seg_index >= seg_count:
        raise ValueError("segment")
    if seg_count == 1:
        if msg_len != payload_len or seg_size != payload_len:
            raise ValueError("segsize")
    else:
        before = (seg_count - 1) * seg_size
        if seg_size == 0 or msg_len <= before or msg_len - before > seg_size:
            raise ValueError("segsize")
        want = seg_size if seg_index + 1 < seg_count else msg_len - before
        if payload_len != want:
            raise ValueError("segsize")
    return dict(type=typ, flags=flags, server_id=server_id, request_id=request_id,
                session_id=session_id, seq=seq, seg_index=seg_index, seg_count=seg_count,
                msg_len=msg_len), dg[64:]


def build(typ, request_id, payload=b"", session_id=0, seq=0, flags=0, server_id=0,
          seg_index=0, seg_count=1, msg_len=None, seg_size=None):
    """Build one datagram (a whole message unless seg_* are given)."""
    if msg_len is None:
        msg_len = len(payload)
    if seg_size is None:
        seg_size = len(payload)
    return HDR.pack(MAGIC, VERSION, typ, flags, server_id, request_id, session_id, seq,
                    seg_index, seg_count, msg_len, len(payload), seg_size, 0, 0,
                    b"\0" * 16) + payload


def segments(typ, request_id, msg, seg_size, session_id=0, flags=0):
    """Split a message into datagrams of at most seg_size payload bytes."""
    n = max(1, -(-len(msg) // seg_size))
    if n > 65535:
        raise ValueError("message needs more than 65535 segments")
    if n == 1:
        return [build(typ, request_id, msg, session_id=session_id, flags=flags)]
    return [build(typ, request_id, msg[i * seg_size:(i + 1) * seg_size], session_id=session_id,
                  flags=flags, seg_index=i, seg_count=n, msg_len=len(msg), seg_size=seg_size)
            for i in range(n)]


def request_body(prompt, max_new_tokens=0, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                 repetition_penalty=1.0, seed=0, stop=(), labels=(), priority=0,
                 deadline_us=0, keep_session=False, messages=None, tools=None,
                 tool_choice=None, response_format=None, pooling=None, normalize=True,
                 continue_session=False):
    """Encode a GENERATE/CLASSIFY/EMBED body (fixed block + TLVs). 'prompt'
    may be None when 'messages' (a list of chat messages) replaces it;
    'tools' is a list of tool definitions, 'tool_choice' "auto", "none",
    "required" or a tool's name; 'response_format' a JSON schema (dict);
    'pooling' ("mean", "cls", "last") and 'normalize' are EMBED's options.
    'keep_session' keeps the KV after the turn (flag KEEP_SESSION);
    'continue_session' says the prompt is only the next turn's text (flag
    CONTINUE: UNKNOWN_SESSION when the server does not hold the session)."""
    if isinstance(prompt, str):
        prompt = prompt.encode()
    flags = (REQF_KEEP_SESSION if keep_session else 0) | (REQF_CONTINUE if continue_session else 0)
    body = FIXED.pack(40, priority, flags, max_new_tokens, temperature,
                      top_k, top_p, min_p, repetition_penalty, deadline_us, seed)

    def tlv(tag, value):
        if isinstance(value, str):
            value = value.encode()
        return struct.pack("<HHI", tag, 0, len(value)) + value

    if prompt is not None:
        body += tlv(TAG_PROMPT, prompt)
    for s in stop:
        body += tlv(TAG_STOP, s)
    for lab in labels:
        body += tlv(TAG_LABEL, lab)
    if messages is not None:
        body += tlv(TAG_MESSAGES, json.dumps(messages, ensure_ascii=False))
    if tools is not None:
        body += tlv(TAG_TOOLS, json.dumps(tools, ensure_ascii=False))
    if response_format is not None:
        body += tlv(TAG_RESPONSE_FORMAT, json.dumps(response_format, ensure_ascii=False))
    if tool_choice is not None and tool_choice != "auto":
        if tool_choice in TOOL_CHOICES:
            body += tlv(TAG_TOOL_CHOICE, bytes([TOOL_CHOICES[tool_choice]]))
        else:
            body += tlv(TAG_TOOL_CHOICE, b"\x03" + tool_choice.encode())
    if pooling is not None or not normalize:
        body += tlv(TAG_EMBED_OPTS, struct.pack("<BBH", POOLINGS[pooling or "mean"],
                                                1 if normalize else 0, 0))
    return body


class Client:
    """A client of one agentwire server over a connected UDP socket."""

    def __init__(self, host="127.0.0.1", port=7878, timeout=10.0, rto=0.02, max_retries=6,
                 mtu=1500, reorder_window=64, server_id=0):
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect(addr)
        self.timeout = timeout
        self.rto = rto
        self.max_retries = max_retries
        self.seg_size = mtu - (40 if family == socket.AF_INET6 else 20) - 8 - 64
        self.window = reorder_window
        self.server_id = server_id
        self.next_id = int.from_bytes(os.urandom(8), "little") & ~0xFFFFFF
        self.stats_counters = dict(bad=0, stray=0, dups=0, retransmits=0, resumes=0)
        self.last_server_id = None
        self._current = None  # (request id, session id) of the request in progress
        self._cancel = False

    def cancel(self):
        """Cancel the request in progress (call it between chunks of
        generate_stream()). The stream then ends with finish 'cancelled' (or
        its normal end, if that came first); CANCEL is repeated until then."""
        if self._current is None:
            raise RuntimeError("no request in progress")
        self._cancel = True
        self.sock.send(build(CANCEL, self._current[0], session_id=self._current[1]))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the engine: one request, yields output chunks, returns the terminal --

    def _run(self, typ, msg, session_id=0):
        rid = self.next_id
        self.next_id = (self.next_id + 1) & 0xFFFFFFFFFFFFFFFF
        self._current, self._cancel = (rid, session_id), False
        try:
            return (yield from self._run_one(typ, msg, session_id, rid))
        finally:
            self._current, self._cancel = None, False

    def _run_one(self, typ, msg, session_id, rid):
        dgrams = segments(typ, rid, msg, self.seg_size, session_id)
        for d in dgrams:
            self.sock.send(d)
        deadline = time.monotonic() + self.timeout
        rto, retries, got_any, next_seq = self.rto, 0, False, 0
        held = {}
        n_data, n_calls, data_bytes = 0, 0, 0
        frag_type, frag = 0, []  # a reply arriving in fragments (F_MORE)
        timer = time.monotonic() + rto
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise Timeout("no answer within %.3f s" % self.timeout)
            if now >= timer:
                retries += 1
                if retries > self.max_retries:
                    raise Timeout("%d timer expiries without progress" % self.max_retries)
                if self._cancel:
                    self.sock.send(build(CANCEL, rid, session_id=session_id))
                if not got_any or typ == PING:
                    for d in segments(typ, rid, msg, self.seg_size, session_id, F_RETRANSMIT):
                        self.sock.send(d)
                    self.stats_counters["retransmits"] += 1
                else:
                    self.sock.send(build(RESUME, rid, seq=next_seq, session_id=session_id))
                    self.stats_counters["resumes"] += 1
                rto = min(rto * 2, 1.0)
                timer = now + rto
            self.sock.settimeout(max(0.0005, min(timer, deadline) - now))
            try:
                dg = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                continue
            try:
                h, payload = parse_header(dg)
            except ValueError:
                self.stats_counters["bad"] += 1
                continue
            if h["type"] < 0x81 or h["seg_count"] != 1:
                self.stats_counters["bad"] += 1
                continue
            if h["request_id"] != rid:
                self.stats_counters["stray"] += 1
                continue
            got_any = True
            self.last_server_id = h["server_id"]
            if h["type"] == PROGRESS or h["flags"] & F_CONTROL:
                if h["type"] == ERROR:
                    code, msg_text, retry = self._error(payload)
                    if code == 8 and self._cancel:  # UNKNOWN_REQUEST answering our CANCEL
                        raise Cancelled("the server did not hold the request")
                    raise AgentwireError(code, msg_text, retry)
                retries, rto, timer = 0, self.rto, time.monotonic() + self.rto
                continue
            if h["type"] == PONG and typ != PING:
                self.stats_counters["bad"] += 1
                continue
            seq = h["seq"]
            if seq < next_seq or seq in held:
                self.stats_counters["dups"] += 1
                continue
            if seq > next_seq:
                if seq - next_seq >= self.window or h["type"] == PONG:
                    continue
                held[seq] = (h, payload)
                retries = 0
                timer = min(timer, time.monotonic() + rto / 2)
                continue
            held[seq] = (h, payload)
            while next_seq in held:
                h2, p2 = held.pop(next_seq)
                next_seq += 1
                retries, rto, timer = 0, self.rto, time.monotonic() + self.rto
                t = h2["type"]
                # reply fragments: a run of TOOL_CALL datagrams, every one but
                # the last flagged MORE, each its own seq (docs/PROTOCOL.md)
                if h2["flags"] & F_MORE and t != TOOL_CALL:
                    raise ProtocolError("%s datagram (seq %d) marked MORE: only TOOL_CALL is "
                                        "fragmented" % (TYPE_NAMES.get(t, "0x%02x" % t),
                                                        h2["seq"]))
                if frag_type and t != frag_type:
                    raise ProtocolError("%s fragments missing: %d bytes so far, then %s (seq %d)"
                                        % (TYPE_NAMES[frag_type], sum(map(len, frag)),
                                           TYPE_NAMES.get(t, "0x%02x" % t), h2["seq"]))
                if h2["flags"] & F_MORE or frag_type:
                    frag.append(p2)
                    if sum(map(len, frag)) > MAX_REPLY_MSG:
                        raise ProtocolError("TOOL_CALL reply longer than %d bytes"
                                            % MAX_REPLY_MSG)
                    if h2["flags"] & F_MORE:
                        frag_type = t
                        n_calls += 1  # every fragment is a stream datagram
                        continue
                    p2, frag_type, frag = b"".join(frag), 0, []
                if t == DATA:
                    if len(p2) < 4:
                        raise ProtocolError("DATA payload of %d bytes" % len(p2))
                    n_data += 1
                    data_bytes += len(p2) - 4
                    yield p2[4:]
                elif t == TOOL_CALL:
                    n_calls += 1
                    yield parse_tool_call(p2)
                elif t == PONG:
                    yield p2
                    return None
                elif t == END:
                    s = self._summary(p2)
                    if s.n_data != h2["seq"] or s.n_data != n_data + n_calls or \
                            s.data_bytes != data_bytes:
                        raise ProtocolError("summary disagrees with the data received")
                    if typ != PING:
                        self.sock.send(build(ACK, rid, session_id=session_id))
                    return s
                elif t == ERROR:
                    code, msg_text, retry = self._error(p2)
                    self.sock.send(build(ACK, rid, session_id=session_id))
                    raise AgentwireError(code, msg_text, retry)
                else:
                    raise ProtocolError("unexpected reply type 0x%02x" % t)

    @staticmethod
    def _error(p):
        if len(p) < 8:
            raise ProtocolError("ERROR payload of %d bytes" % len(p))
        code, n, retry = struct.unpack_from("<HHI", p)
        if n > 200 or len(p) != 8 + n:
            raise ProtocolError("ERROR message length %d in %d bytes" % (n, len(p)))
        return code, p[8:].decode("utf-8", "replace"), retry

    @staticmethod
    def _summary(p):
        if len(p) < SUMMARY.size:
            raise ProtocolError("END payload of %d bytes" % len(p))
        (finish, model, n_probs, prompt_tokens, gen_tokens, queue_us, prefill_us, decode_us,
         n_data, data_bytes) = SUMMARY.unpack_from(p)
        if finish >= len(FINISH_NAMES) or n_probs > 256 or len(p) != SUMMARY.size + 4 * n_probs:
            raise ProtocolError("malformed END summary")
        probs = list(struct.unpack_from("<%df" % n_probs, p, SUMMARY.size))
        return Summary(finish, prompt_tokens, gen_tokens, queue_us, prefill_us, decode_us,
                       n_data, data_bytes, probs, model)

    def _collect(self, typ, msg, session_id=0, calls=None):
        gen = self._run(typ, msg, session_id)
        out = []
        while True:
            try:
                x = next(gen)
            except StopIteration as stop:
                return b"".join(out), stop.value
            if isinstance(x, ToolCall):
                if calls is None:
                    raise ProtocolError("TOOL_CALL in a response without tools")
                calls.append(x)
            else:
                out.append(x)

    # -- operations --

    def ping(self, payload=b""):
        """Echo 'payload'; returns the round-trip time in seconds."""
        t0 = time.monotonic()
        echo, _ = self._collect(PING, bytes(payload))
        if echo != bytes(payload):
            raise ProtocolError("echo differs from the payload")
        return time.monotonic() - t0

    def stats(self):
        """The server's counters as text ("name value" lines)."""
        text, _ = self._collect(STATS, b"")
        return text.decode("utf-8", "replace")

    def stats_dict(self):
        out = {}
        for line in self.stats().splitlines():
            name, _, value = line.partition(" ")
            out[name] = int(value)
        return out

    def generate(self, prompt, session_id=0, **params):
        """Generate text; returns (text, Summary). Raises AgentwireError."""
        data, summary = self._collect(GENERATE, request_body(prompt, **params), session_id)
        return data.decode("utf-8", "replace"), summary

    def generate_stream(self, prompt, session_id=0, **params):
        """Yield text chunks as they arrive; the generator's return value
        (StopIteration.value) is the Summary."""
        gen = self._run(GENERATE, request_body(prompt, **params), session_id)
        while True:
            try:
                chunk = next(gen)
            except StopIteration as stop:
                return stop.value
            yield chunk.decode("utf-8", "replace")

    def classify(self, prompt, labels, **params):
        """One probability per label (from one prefill)."""
        _, summary = self._collect(CLASSIFY, request_body(prompt, labels=labels, **params))
        return summary.probs

    def chat(self, messages, tools=None, tool_choice=None, session_id=0, **params):
        """Generate from chat messages (rendered with the server's model's
        template); returns (text, [ToolCall], Summary)."""
        calls = []
        data, summary = self._collect(
            GENERATE, request_body(None, messages=messages, tools=tools,
                                   tool_choice=tool_choice, **params), session_id, calls)
        return data.decode("utf-8", "replace"), calls, summary

    def chat_stream(self, messages, tools=None, tool_choice=None, session_id=0, **params):
        """Yield str chunks and ToolCall objects as they arrive; the return
        value (StopIteration.value) is the Summary."""
        gen = self._run(GENERATE, request_body(None, messages=messages, tools=tools,
                                               tool_choice=tool_choice, **params), session_id)
        while True:
            try:
                x = next(gen)
            except StopIteration as stop:
                return stop.value
            yield x if isinstance(x, ToolCall) else x.decode("utf-8", "replace")

    def embed(self, text, pooling=None, normalize=True, **params):
        """The embedding vector (list of floats); pooling "mean" (default),
        "cls" or "last"; normalize: divide by the L2 norm (default)."""
        data, _ = self._collect(EMBED, request_body(text, pooling=pooling, normalize=normalize,
                                                    **params))
        if len(data) % 4:
            raise ProtocolError("embedding of %d bytes" % len(data))
        return list(struct.unpack("<%df" % (len(data) // 4), data))


class Session:
    """A conversation whose KV the server keeps between turns (KEEP_SESSION).

    Each turn after the first sends only its new text, with CONTINUE. When the
    server no longer holds the session (it expired, was evicted, or the
    request reached another server) it answers UNKNOWN_SESSION, and the turn
    is sent again with the whole conversation so far, which starts the
    session anew (the server's prefix cache may still hold its blocks). The
    conversation is kept here as text: the resent prompt is the earlier
    prompts and answers concatenated, re-tokenized by the server.

        s = agentwire.Session(client)              # or Session(client, sid)
        answer, summary = s.generate("Hello, I need a flight to Rome.")
        answer, summary = s.generate(" And a hotel.")
        s.resent                                   # turns sent in full again
    """

    def __init__(self, client, session_id=None, history=""):
        self.client = client
        self.session_id = session_id or int.from_bytes(os.urandom(8), "little") | 1
        self.history = history  # the conversation so far (prompts and answers)
        self.resent = 0

    def generate(self, text, **params):
        """One turn: returns (answer, Summary). Raises AgentwireError for
        errors other than UNKNOWN_SESSION."""
        c, sid = self.client, self.session_id
        try:
            out, summary = c.generate(text, session_id=sid, keep_session=True,
                                      continue_session=bool(self.history), **params)
        except AgentwireError as e:
            if e.code != ERR_UNKNOWN_SESSION or not self.history:
                raise
            self.resent += 1
            out, summary = c.generate(self.history + text, session_id=sid, keep_session=True,
                                      **params)
        self.history += text + out
        return out, summary
