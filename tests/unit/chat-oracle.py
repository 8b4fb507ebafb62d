#!/usr/bin/env python3
"""Oracle for test-chat: renders generated conversations with python3-jinja2.

Usage: chat-oracle.py TEMPLATE_DIR [N]

Prints one JSON object per line:
  {"template": FILE, "conv": {"messages": [...], "tools": [...]}, "expect": TEXT or null}
"expect" is null when the template raises (the C renderer must refuse too).

The environment is the one the models' own tooling (Hugging Face
transformers' chat templating) uses: trim_blocks, lstrip_blocks, loop
controls, raise_exception, strftime_now, and its tojson (json.dumps with
ensure_ascii=False, no key sorting, no HTML escaping). Stock Jinja2's tojson
differs (sorted keys, \\u003c for '<'): no model was trained on that.
Exits 77 when the templates or jinja2 are absent. Deterministic (seeded).
"""
import datetime
import json
import os
import random
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
except ImportError:
    sys.exit(77)

DATE = datetime.datetime(2025, 3, 15, 12, 0, 0)  # pinned; C side passes "15 Mar 2025"
BOS = {"meta-llama": "<|begin_of_text|>", "NousResearch": "<|begin_of_text|>",
       "mistralai": "<s>"}
EOS = {"meta-llama": "<|eot_id|>", "NousResearch": "<|im_end|>", "mistralai": "</s>",
       "Qwen": "<|im_end|>", "HuggingFaceTB": "<|im_end|>"}
GENERIC = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
           "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
           "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def env():
    e = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                     extensions=[jinja2.ext.loopcontrols])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = lambda fmt: DATE.strftime(fmt)
    return e


WORDS = ["hello", "world", "weather", "Paris", "naïve café", "日本語のテキスト", "emoji 🚀✨",
         "<|im_start|>", "<|eot_id|>", "[INST]", "</s>", "<tool_call>", "<|begin_of_text|>",
         "quote \" and \\ backslash", "tab\there", "new\nline", "  padded  ", "/think", "/no_think",
         "{\"json\": true}", "{{ not jinja }}", "{% raw %}", "\u00a0nbsp\u00a0", "ctrl\x01\x1f",
         "<b>&amp;'</b>", "null", "12345", "\u2028sep", "Ω≈ç√", "[TOOL_CALLS]", "<think>"]
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def text(r):
    n = r.randint(1, 4)
    s = " ".join(r.choice(WORDS) for _ in range(n))
    if r.random() < 0.15:
        s = "\n" + s + "\n\n"
    if r.random() < 0.1:
        s = " " + s + " "
    return s


def value(r, depth):
    k = r.randint(0, 9 if depth < 3 else 5)
    if k == 0:
        return None
    if k == 1:
        return r.random() < 0.5
    if k == 2:
        return r.randint(-10**6, 10**6)
    if k == 3:
        return r.choice([0.5, -2.25, 1e-7, 3.0, 1e21, 123456.789, 0.1, 2.5e-5, -0.0, 1e16])
    if k in (4, 5):
        return text(r)
    if k in (6, 7):
        return [value(r, depth + 1) for _ in range(r.randint(0, 3))]
    return {r.choice(WORDS[:8]) + str(i): value(r, depth + 1) for i in range(r.randint(0, 3))}


def param(r):
    t = r.choice(["string", "number", "integer", "boolean", "array", "object", "object+",
                  ["string", "null"], ["integer", "string"], None])
    p = {}
    if t == "object+":
        p = {"type": "object", "additionalProperties": {"type": r.choice(["string", "integer"])}}
    elif t is not None:
        p["type"] = t
    if t == "array":
        p["items"] = {"type": "string"}
    if r.random() < 0.8:
        p["description"] = text(r)
    if r.random() < 0.3:
        p["enum"] = [text(r), text(r)]
    return p


def tool(r, i):
    props = {("arg_%d" % j) if r.random() < 0.7 else r.choice(["city", "ünits", "q"]) + str(j):
             param(r) for j in range(r.randint(0, 4))}
    f = {"name": "tool_%d_%s" % (i, r.choice(["get", "set", "run"])),
         "description": text(r),
         "parameters": {"type": "object", "properties": props,
                        "required": list(props)[: r.randint(0, len(props))]}}
    if r.random() < 0.2:
        f["return"] = {"type": r.choice(["string", "integer"]), "description": text(r)}
    return {"type": "function", "function": f}


def call(r, tools):
    name = r.choice(tools)["function"]["name"] if tools else "fn"
    args = {"a%d" % i: value(r, 1) for i in range(r.randint(0, 3))}
    if r.random() < 0.1:
        args = json.dumps(args)  # arguments given as a string
    return {"id": "".join(r.choice(ALNUM) for _ in range(9)), "type": "function",
            "function": {"name": name, "arguments": args}}


def conversation(r):
    tools = [tool(r, i) for i in range(r.randint(1, 3))] if r.random() < 0.5 else []
    msgs = []
    if r.random() < 0.6:
        msgs.append({"role": "system", "content": text(r)})
    for turn in range(r.randint(1, 4)):
        msgs.append({"role": "user", "content": text(r)})
        if turn == 0 and r.random() < 0.1:
            break
        if tools and r.random() < 0.5:
            calls = [call(r, tools) for _ in range(1 if r.random() < 0.6 else r.randint(2, 3))]
            m = {"role": "assistant", "tool_calls": calls}
            if r.random() < 0.3:
                m["content"] = r.choice(["", text(r)])
            msgs.append(m)
            for c in calls:
                res = text(r) if r.random() < 0.6 else json.dumps(value(r, 1))
                msgs.append({"role": "tool", "tool_call_id": c["id"], "content": res})
            if r.random() < 0.5:
                msgs.append({"role": "assistant", "content": text(r)})
        elif r.random() < 0.8:
            msgs.append({"role": "assistant", "content": text(r)})
    if r.random() < 0.4 and msgs[-1]["role"] == "assistant":
        msgs.append({"role": "user", "content": text(r)})
    conv = {"messages": msgs}
    if tools:
        conv["tools"] = tools
    return conv


def render(t, prefix, conv):
    kw = {"messages": conv["messages"], "add_generation_prompt": True,
          "bos_token": BOS.get(prefix, ""), "eos_token": EOS.get(prefix, "")}
    if conv.get("tools"):
        kw["tools"] = conv["tools"]
    try:
        return t.render(**kw)
    except (jinja2.exceptions.TemplateError, RecursionError, TypeError):
        return None


def main():
    if len(sys.argv) < 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(77)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 220
    r = random.Random(14)
    convs = [conversation(r) for _ in range(n)]
    e = env()
    files = sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".jinja"))
    out = sys.stdout
    for f in files + ["generic"]:
        if f == "generic":
            src, prefix = GENERIC, "generic"
        else:
            with open(os.path.join(sys.argv[1], f), encoding="utf-8") as fh:
                src = fh.read()
            prefix = f.split("-")[0]
        t = e.from_string(src)
        for c in convs:
            if f == "generic" and c.get("tools"):
                continue
            rec = {"template": f, "bos": BOS.get(prefix, ""), "eos": EOS.get(prefix, ""),
                   "conv": c, "expect": render(t, prefix, c)}
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
