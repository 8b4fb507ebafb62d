#!/usr/bin/env python3
"""test_loadgen_cli.py — aw-loadgen and aw-echod as programs: usage errors
exit 2, a short open-loop and closed-loop run against aw-echod report what
was sent, --json is valid JSON, a sweep writes its CSV, a bad workload file
names the line.

    test_loadgen_cli.py BUILD/tools/aw-loadgen BUILD/tools/aw-echod
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

LG = ECHOD = None


def run(*args, **kw):
    return subprocess.run([LG] + list(args), capture_output=True, text=True, timeout=60, **kw)


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc = subprocess.Popen([ECHOD, "--port", "0"], stdout=subprocess.PIPE, text=True)
        cls.port = int(cls.proc.stdout.readline().split(":")[-1].split()[0])
        cls.server = "127.0.0.1:%d" % cls.port

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stdout.close()

    def test_usage_errors_exit_2(self):
        for args in (["--rate", "x"], ["--rate", "-5"], ["--agents", "0"], ["--bogus"],
                     ["--server", "nohostport"], ["--arrival", "burst"],
                     ["--max-inflight", "1000"], ["--transport", "pigeon"],
                     ["--agents", "2", "--rate", "10"], ["--sweep", "1,x"], ["extra"]):
            r = run(*args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertIn("usage", r.stderr)
        # http (llama-server's /completion) takes GENERATE only: the default
        # workload is PINGs
        r = run("--transport", "http", "-s", "127.0.0.1:9", "-d", "0.1")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("only generate", r.stderr)
        for args in (["--port", "99999"], ["--server-id", "-1"], ["--mtu", "10"], ["x"]):
            r = subprocess.run([ECHOD] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))

    def test_open_loop_json(self):
        r = run("-s", self.server, "-r", "2000", "-d", "0.5", "--warmup", "0.1", "--json",
                "--arrival", "constant", "--no-progress")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = json.loads(r.stdout)
        p = d["ops"]["ping"]
        # constant arrivals: exactly rate * duration requests are measured
        self.assertEqual(p["sent"], 1000)
        self.assertEqual(p["ok"] + p["err"], p["sent"])
        self.assertEqual(p["e2e_us"]["count"], p["ok"])
        self.assertGreater(p["ok"], 0)
        e = p["e2e_us"]
        self.assertTrue(0 < e["p50"] <= e["p90"] <= e["p99"] <= e["p999"] <= e["max"])

    def test_closed_loop_table_and_workload(self):
        with tempfile.NamedTemporaryFile("w", suffix=".wl", delete=False) as f:
            f.write("mix = ping:3 stats:1 generate:1\nping_bytes = 3000\n")
        try:
            r = run("-s", self.server, "-a", "4", "--think-us", "100", "-d", "0.5",
                    "--warmup", "0.1", "-w", f.name, "--no-progress")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("closed loop: 4 agents", r.stdout)
            self.assertIn("error UNSUPPORTED", r.stdout)  # aw-echod refuses GENERATE
            for op in ("ping", "stats", "generate"):
                self.assertIn("\n" + op, r.stdout)
        finally:
            os.unlink(f.name)

    def test_bad_workload_names_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".wl", delete=False) as f:
            f.write("mix = ping:1\n\nprompt_tokens = lots\n")
        try:
            r = run("-s", self.server, "-w", f.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f.name + ":3: prompt_tokens", r.stderr)
        finally:
            os.unlink(f.name)

    def test_sweep_csv(self):
        with tempfile.TemporaryDirectory() as d:
            csv = os.path.join(d, "s.csv")
            png = os.path.join(d, "s.png")
            r = run("-s", self.server, "--sweep", "500,1000", "-d", "0.3", "--warmup", "0",
                    "--csv", csv, "--plot", png, "--no-progress")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(csv) as f:
                rows = f.read().splitlines()
            self.assertEqual(rows[0].split(",")[0], "offered_per_s")
            self.assertEqual(len(rows), 3)
            self.assertEqual(float(rows[1].split(",")[0]), 500.0)
            gnuplot = any(os.access(os.path.join(p, "gnuplot"), os.X_OK)
                          for p in os.environ.get("PATH", "").split(":"))
            if gnuplot:
                with open(png, "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: test_loadgen_cli.py AW_LOADGEN AW_ECHOD", file=sys.stderr)
        sys.exit(77)
    ECHOD = sys.argv.pop(2)
    LG = sys.argv.pop(1)
    unittest.main(verbosity=2)
