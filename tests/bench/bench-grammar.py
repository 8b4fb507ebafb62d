#!/usr/bin/env python3
"""bench-grammar.py — JSON-schema mask time: agentwire vs llama.cpp's GBNF.

usage: bench-grammar.py AW_INFER AW_MKMODEL SOURCE_ROOT [LLAMA_BIN_DIR] [EVERY] [PEER_N]

Both engines run the same random-weight model (aw-mkmodel: dim 32, 1 layer,
q4_0, the real Llama 3 vocabulary of 128 256 tokens) on one thread.
agentwire: `aw-infer --grammar-bench` over every EVERY-th JSONSchemaBench
schema (default 10) prints compile µs and per-token mask µs directly.
llama.cpp: llama-server's /completion with "json_schema" for the first PEER_N
(default 20) of those schemas, against the same request without a schema;
llama.cpp reports no grammar time of its own, so its cost per token is
(ms/token with the schema) - (ms/token without), medians over the schemas.
Prints one JSON line per engine. Skips the peer when LLAMA_BIN_DIR is absent.
"""
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def post(port, body):
    req = urllib.request.Request("http://127.0.0.1:%d/completion" % port, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def main():
    infer, mkmodel, root = sys.argv[1:4]
    peer = sys.argv[4] if len(sys.argv) > 4 else ""
    every = int(sys.argv[5]) if len(sys.argv) > 5 else 10
    peer_n = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    data = "/work/shared/data/jsonschemabench"
    for d in (os.path.join(root, "..", "shared", "data", "jsonschemabench"), data):
        if os.path.isdir(d):
            data = d
            break
    vocab = os.path.join(root, ".cache", "tok-data", "llama3.gguf")
    if not os.path.isdir(data) or not os.path.exists(vocab):
        print("bench-grammar: data or Llama 3 vocabulary absent; skipped")
        return 77
    tmp = tempfile.mkdtemp()
    model = os.path.join(tmp, "m.gguf")
    subprocess.run([mkmodel, "--dim", "32", "--layers", "1", "--heads", "2", "--kv-heads", "2", "--ffn",
                    "64", "--ctx", "4096", "--type", "q4_0", "--tokenizer-from", vocab, "--out", model],
                   check=True, stdout=subprocess.DEVNULL)
    jl = os.path.join(tmp, "s.jsonl")
    schemas = []
    with open(jl, "w") as out:
        for f in sorted(os.listdir(data)):
            with gzip.open(os.path.join(data, f), "rt") as src:
                for i, line in enumerate(src):
                    if i % every == 0:
                        d = json.loads(line)
                        schemas.append((f.split(".")[0] + "/" + d["name"], d["schema"]))
                        out.write(json.dumps({"name": schemas[-1][0], "schema": d["schema"]}) + "\n")
    r = subprocess.run(["taskset", "-c", "0", infer, "-m", model, "--grammar-bench", jl, "--seed", "7",
                        "-n", "256", "--temp", "1"], capture_output=True, text=True, check=True)
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    summary = lines[-1]["summary"]
    compiled = [x["name"] for x in lines[:-1] if x.get("compiled")]
    print(json.dumps({"engine": "agentwire", "schemas": summary["schemas"], "compiled": summary["compiled"],
                      "complete": summary["complete"], "tokens": summary["tokens"],
                      "ff_tokens": summary["ff_tokens"], "compile_us": summary["compile_us"],
                      "compile_cpu_us": summary["compile_cpu_us"],
                      "mask_us": summary["mask_us"], "vocab_build_ms": summary["vocab_build_ms"]}))
    server = os.path.join(peer, "llama-server") if peer else ""
    if not server or not os.path.exists(server):
        print(json.dumps({"engine": "llama.cpp", "skipped": "no llama-server"}))
        return 0
    port = 18000 + os.getpid() % 1000
    srv = subprocess.Popen(["taskset", "-c", "0", server, "-m", model, "--port", str(port), "-t", "1",
                            "-c", "4096", "-np", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                break
            except Exception:
                time.sleep(0.5)
        byname = dict(schemas)
        extra, plain, failed, used = [], [], 0, 0
        for name in compiled[:peer_n]:
            body = {"prompt": "hi", "n_predict": 64, "temperature": 1, "seed": 7}
            try:
                p = post(port, body)["timings"]
                body["json_schema"] = byname[name]
                s = post(port, body)
            except Exception:
                failed += 1
                continue
            if "timings" not in s or s["timings"]["predicted_n"] == 0:
                failed += 1
                continue
            used += 1
            plain.append(p["predicted_per_token_ms"])
            extra.append((s["timings"]["predicted_per_token_ms"] - p["predicted_per_token_ms"]) * 1000)
        print(json.dumps({"engine": "llama.cpp", "schemas": used, "failed": failed,
                          "plain_ms_per_token_median": statistics.median(plain) if plain else None,
                          "grammar_us_per_token": {
                              "median": statistics.median(extra) if extra else None,
                              "avg": statistics.mean(extra) if extra else None,
                              "max": max(extra) if extra else None}}))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
