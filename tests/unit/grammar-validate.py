#!/usr/bin/env python3
"""grammar-validate.py — constrained outputs validate against their schemas.

For the JSONSchemaBench schemas in ../shared/data/jsonschemabench (every
Nth line of each file; N = $AW_GRAMMAR_EVERY, default 25; 1 = all of them),
build a random-weight model with the real Llama 3 vocabulary (aw-mkmodel,
tokenizer from tests/data/fetch-npm-data.sh), run `aw-infer
--grammar-bench` on them, and check with an independent validator (Debian's
python3-jsonschema, formats included) that every output of a schema that
compiled parses as JSON and validates. The random model is adversarial: the
grammar alone keeps it valid.

usage: grammar-validate.py AW_INFER AW_MKMODEL SOURCE_ROOT
Exit 0 all valid, 1 a failure, 77 data or jsonschema missing.
"""
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile


def main():
    infer, mkmodel, root = sys.argv[1:4]
    data = os.environ.get("AW_SCHEMA_DATA", os.path.join(root, "..", "shared", "data", "jsonschemabench"))
    if not os.path.isdir(data):
        data = "/work/shared/data/jsonschemabench"
    vocab = os.path.join(root, ".cache", "tok-data", "llama3.gguf")
    try:
        import jsonschema
    except ImportError:
        print("SKIP: python3-jsonschema missing")
        return 77
    files = sorted(f for f in os.listdir(data) if f.endswith(".jsonl.gz")) if os.path.isdir(data) else []
    if not files or not os.path.exists(vocab):
        print("SKIP: jsonschemabench data or the Llama 3 vocabulary (fetch-npm-data.sh) absent")
        return 77
    every = int(os.environ.get("AW_GRAMMAR_EVERY", "25"))
    # a binary for another machine runs under emulation (the arm64 CI stage,
    # qemu-user): a smaller sample keeps the test quick
    with open(infer, "rb") as f:
        elf = f.read(20)
    machines = {0x3E: "x86_64", 0xB7: "aarch64"}
    host = platform.machine()
    if len(elf) == 20 and machines.get(int.from_bytes(elf[18:20], "little"), host) != host:
        every = max(every, 150)
    schemas = {}
    with tempfile.TemporaryDirectory() as tmp:
        jl = os.path.join(tmp, "schemas.jsonl")
        with open(jl, "w") as out:
            for f in files:
                with gzip.open(os.path.join(data, f), "rt") as src:
                    for i, line in enumerate(src):
                        if i % every:
                            continue
                        d = json.loads(line)
                        name = f.split(".")[0] + "/" + d["name"]
                        schemas[name] = d["schema"]
                        out.write(json.dumps({"name": name, "schema": d["schema"]}) + "\n")
        model = os.path.join(tmp, "m.gguf")
        subprocess.run([mkmodel, "--dim", "32", "--layers", "1", "--heads", "2", "--kv-heads", "2",
                        "--ffn", "64", "--ctx", "4096", "--type", "q4_0", "--tokenizer-from", vocab,
                        "--out", model], check=True, stdout=subprocess.DEVNULL)
        r = subprocess.run([infer, "-m", model, "--grammar-bench", jl, "--seed", "7", "-n", "512",
                            "--temp", "1"], capture_output=True, text=True)
        if r.returncode != 0:
            print("aw-infer failed:", r.stderr)
            return 1
    fails = compiled = complete = valid = 0
    summary = None
    for line in r.stdout.splitlines():
        d = json.loads(line)
        if "summary" in d:
            summary = d["summary"]
            continue
        if not d["compiled"]:
            continue
        compiled += 1
        if not d["complete"]:
            print("INCOMPLETE %s after %d tokens: %.200s" % (d["name"], d["tokens"], d["output"]))
            fails += 1
            continue
        complete += 1
        schema = schemas[d["name"]]
        try:
            value = json.loads(d["output"])
        except ValueError as e:
            print("NOT JSON %s: %s: %.300s" % (d["name"], e, d["output"]))
            fails += 1
            continue
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        v = cls(schema, format_checker=cls.FORMAT_CHECKER)
        errs = list(v.iter_errors(value))
        if errs:
            print("INVALID %s: %s\n  output: %.300s" % (d["name"], errs[0].message[:200], d["output"]))
            fails += 1
            continue
        valid += 1
    print("schemas %d (every %d), compiled %d, complete %d, valid %d, failures %d" %
          (len(schemas), every, compiled, complete, valid, fails))
    print("summary:", json.dumps(summary))
    return 1 if fails or summary is None else 0


if __name__ == "__main__":
    sys.exit(main())
