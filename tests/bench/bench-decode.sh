#!/usr/bin/env bash
# bench-decode.sh — decode and prefill speed of aw-infer against the memory
# read roofline and against llama.cpp's llama-bench, in one run.
#
#   tests/bench/bench-decode.sh [LLAMA_BENCH] [BUILD_DIR]
#
# LLAMA_BENCH is the path of a llama.cpp llama-bench binary (optional: the
# comparison columns are left empty without it; it is never fetched or built
# here). BUILD_DIR is agentwire's meson build (default: build).
#
# Steps, all in this one run because the machine is shared and only ratios
# measured together mean anything:
#   1. read bandwidth on 1 and 2 threads (bench-kern's figure: 512-bit
#      sequential loads over 1 GiB, best of 5);
#   2. for each preset x type x thread count: aw-infer --bench (best of
#      AW_BENCH_REPS) and llama-bench (mean of the same number of reps) on the
#      same file, both pinned with taskset to the same CPUs;
#   3. one table: decode tok/s, the fraction of the roofline it reaches
#      (decode bytes per token x tok/s / bandwidth of as many threads), the
#      peer's decode tok/s and our ratio to it; prefill tok/s and the ratio.
#
# Environment: AW_BENCH_MODELS (model cache, default /tmp/aw-bench-models),
# AW_BENCH_PRESETS (default "stories110m tinyllama-1.1b"), AW_BENCH_TYPES
# ("q8_0 q4_0"), AW_BENCH_THREADS ("1 2"), AW_BENCH_PP (prompt tokens; default
# 512 for stories110m, 128 for tinyllama-1.1b), AW_BENCH_TG (128),
# AW_BENCH_REPS (3). Models are written once with aw-mkmodel (seed 1).
set -euo pipefail

peer=${1:-}
build=${2:-build}
models=${AW_BENCH_MODELS:-/tmp/aw-bench-models}
presets=${AW_BENCH_PRESETS:-stories110m tinyllama-1.1b}
types=${AW_BENCH_TYPES:-q8_0 q4_0}
threads=${AW_BENCH_THREADS:-1 2}
tg=${AW_BENCH_TG:-128}
reps=${AW_BENCH_REPS:-3}

for t in tools/aw-mkmodel tools/aw-infer; do
	[ -x "$build/$t" ] || { echo "bench-decode: $build/$t missing (build first)" >&2; exit 1; }
done
if [ -n "$peer" ] && [ ! -x "$peer" ]; then
	echo "bench-decode: llama-bench '$peer' not found: peer columns left empty" >&2
	peer=
fi
mkdir -p "$models"
out=$(mktemp -d /tmp/bench-decode.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "# bench-decode $(date -u +%Y-%m-%dT%H:%MZ) on $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# agentwire $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')${peer:+, peer $peer ($(cat "$(dirname "$peer")/../../PEER_COMMIT" 2>/dev/null || echo 'commit unknown'))}"

# 1. bandwidth
bw1= bw2=
if [ -x "$build/tests/bench/bench-kern" ]; then
	line=$("$build/tests/bench/bench-kern" --variant none 2>/dev/null | grep -m1 'read bandwidth' || true)
	bw1=$(echo "$line" | sed -nE 's/.*1 thread ([0-9.]+) GB\/s.*/\1/p')
	bw2=$(echo "$line" | sed -nE 's/.*2 threads ([0-9.]+) GB\/s.*/\1/p')
fi
if [ -z "$bw1" ]; then
	echo "bench-decode: no bandwidth figure (bench-kern missing): roofline columns empty" >&2
fi
echo "# read bandwidth: 1 thread ${bw1:-?} GB/s, 2 threads ${bw2:-?} GB/s"

printf '%-14s %-5s %2s | %9s %6s %9s %6s | %9s %9s %6s\n' preset type t "dec tok/s" "roof" \
	"peer dec" "ratio" "pp tok/s" "peer pp" "ratio"
for preset in $presets; do
	if [ -n "${AW_BENCH_PP:-}" ]; then pp=$AW_BENCH_PP
	elif [ "$preset" = tinyllama-1.1b ]; then pp=128
	else pp=512; fi
	for type in $types; do
		model=$models/$preset-$type.gguf
		[ -f "$model" ] || "$build/tools/aw-mkmodel" --out "$model" --preset "$preset" --type "$type" >/dev/null
		for t in $threads; do
			cpus=$([ "$t" -eq 1 ] && echo 0 || echo "0-$((t - 1))")
			aw=$(taskset -c "$cpus" "$build/tools/aw-infer" -m "$model" --bench -p "$pp" -n "$tg" \
				-t "$t" --cpus "$cpus" --reps "$reps")
			echo "$aw" >>"$out/aw.jsonl"
			peer_json='[]'
			if [ -n "$peer" ]; then
				peer_json=$(LD_LIBRARY_PATH="$(dirname "$peer")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
					taskset -c "$cpus" "$peer" -m "$model" -p "$pp" -n "$tg" -t "$t" \
					-r "$reps" -o json 2>/dev/null || echo '[]')
			fi
			python3 - "$aw" "$peer_json" "$preset" "$type" "$t" "${bw1:-0}" "${bw2:-0}" <<'PY'
import json, sys
aw = json.loads(sys.argv[1]); peer = json.loads(sys.argv[2])
preset, typ, t = sys.argv[3], sys.argv[4], int(sys.argv[5])
bw = float(sys.argv[6] if t == 1 else sys.argv[7])
dec, pp = aw["decode_tok_s"], aw["prefill_tok_s"]
roof = aw["decode_bytes_per_token"] * dec / (bw * 1e9) if bw > 0 else None
pdec = next((r["avg_ts"] for r in peer if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0), None)
ppp = next((r["avg_ts"] for r in peer if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0), None)
f = lambda v, fmt: (fmt % v) if v is not None else "-"
print(f"{preset:14s} {typ:5s} {t:2d} | {dec:9.1f} {f(roof and roof * 100, '%5.0f%%'):>6s} "
      f"{f(pdec, '%9.1f')} {f(pdec and dec / pdec, '%5.2fx'):>6s} | {pp:9.1f} {f(ppp, '%9.1f')} "
      f"{f(ppp and pp / ppp, '%5.2fx'):>6s}")
PY
		done
	done
done
echo "# roof = decode bytes per token (all weights + one embedding row) x tok/s / read bandwidth of as many threads"
echo "# aw-infer: best of $reps; llama-bench: mean of $reps; prefill = $([ -n "${AW_BENCH_PP:-}" ] && echo "$AW_BENCH_PP" || echo '512 (stories110m) / 128 (tinyllama)') tokens, decode = $tg tokens from an empty context"
