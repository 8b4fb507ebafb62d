#!/usr/bin/env python3
"""Sum meson test logs (testlog.json, one JSON object per line) and print
'N passed, N failed, N skipped' as the last line. Exit 1 if anything failed.
A log from a fuzz build counts only its fuzz tests. A log that is missing
counts as one failure (its build never ran its tests)."""
import json
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    fuzz_only = "build-fuzz" in path
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        print(f"summarize: {path}: missing", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        # meson names a test "project:suite1+suite2 / name"
        suites = t.get("name", "").split(" / ")[0].split(":")[-1].split("+")
        if fuzz_only and "fuzz" not in suites:
            continue
        r = t.get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
            print(f"summarize: FAILED {path}: {t.get('name')} ({r})", file=sys.stderr)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
