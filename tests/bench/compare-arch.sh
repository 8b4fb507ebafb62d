#!/usr/bin/env bash
# compare-arch.sh — each architecture preset (qwen2, Llama 3.2, SmolLM2) at
# each weight type, in agentwire and in llama.cpp, on the same GGUF file:
# last-position logits within a tolerance derived in the same run, and the
# same greedy tokens.
#
#   tests/bench/compare-arch.sh [LLAMA_BIN_DIR] [BUILD_DIR]
#
# LLAMA_BIN_DIR (or $AW_LLAMA_BIN) holds a llama.cpp build's llama-server:
# the peer's path is given, never fetched or built here; without it the
# script exits 77 (skipped). BUILD_DIR is agentwire's meson build (default
# build). Environment:
#   AW_ARCH_PRESETS  aw-mkmodel presets (default "qwen2.5-0.5b llama-3.2-1b
#                    smollm2-135m")
#   AW_ARCH_TYPES    weight types (default "q8_0 q4_k_m")
#   AW_ARCH_REDUCED  1: small variants of each preset with the same
#                    architecture features (qwen2 biases, NEOX RoPE, base
#                    1e6; Llama 3.2 rope_freqs; GQA; tied; rows that are not
#                    multiples of 256 so K-quants fall back as in the real
#                    files) — what the meson test 'arch-peer' runs
#   AW_TOK_DATA      vocabulary GGUFs from tests/data/fetch-npm-data.sh
#                    (default .cache/tok-data): full-size presets then carry
#                    the real vocabularies (qwen2.5.gguf, llama3.gguf,
#                    smollm2.gguf), else aw-mkmodel's synthetic one
#   AW_ARCH_GEN      greedy tokens compared (default 16)
#
# Per file: agentwire's logits with Q8A activations (what it runs), its
# logits with the weights widened to F32 (`aw-infer --dequant`: the same
# weights, unquantized activations) and llama.cpp's log-probabilities over
# the whole vocabulary (llama-server /completion, F32 KV cache in both).
# Compared as log-softmax (llama-server reports log-probabilities).
#
# Tolerance. Both engines compute with the same weights; they differ by
# float summation order (~1e-5 here) and by how they round activations to
# 8 bits before each quantized product: agentwire per 32 values with a float
# scale, llama.cpp per 32 (fp16 scale; Q8_0/Q4_0/Q5_x weights) or per 256
# (Q8_K; K-quant weights). Each engine's log-probabilities therefore differ
# from the exact-activation ones by its rounding error: agentwire's is
# measured here as self = max |aw - aw --dequant|. llama.cpp's rounding is
# the same kind with steps at most ~1.3x coarser (the largest |x| of 256
# values against that of 32, for the bell-shaped activations), so by the
# triangle inequality |aw - peer| <= self + 1.3 self; the tolerance is
# 3 x self (margin for the maximum over a 150 000-token vocabulary being an
# extreme sample). Greedy tokens, teacher-forced (the peer is asked for its
# next token after the prompt plus agentwire's first k tokens, k = 0..15):
# agentwire's token must be the peer's, or within 2 tol x max|logit| of it
# in the peer's own log-probabilities (a near tie that activation rounding
# may flip). ("unreadable" counts steps llama-server failed to answer.)
# Exit status 1 if any file fails.
set -euo pipefail

peer=${1:-${AW_LLAMA_BIN:-}}
build=${2:-build}
presets=${AW_ARCH_PRESETS:-qwen2.5-0.5b llama-3.2-1b smollm2-135m}
types=${AW_ARCH_TYPES:-q8_0 q4_k_m}
gen=${AW_ARCH_GEN:-16}
top=$(cd "$(dirname "$0")/../.." && pwd)
tokdata=${AW_TOK_DATA:-$top/.cache/tok-data}

if [ -z "$peer" ] || [ ! -x "$peer/llama-server" ]; then
	echo "compare-arch: no llama-server in '${peer}': skipped" >&2
	exit 77
fi
for t in aw-mkmodel aw-infer; do
	[ -x "$build/tools/$t" ] || { echo "compare-arch: $build/tools/$t missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/compare-arch.XXXXXX)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# small variants: the preset's architecture features at small dims
reduced() {
	case $1 in
	qwen2.5-0.5b) echo "--layers 2 --dim 384 --heads 6 --kv-heads 2 --ffn 768 --vocab 4096 --ctx 512" ;;
	llama-3.2-1b) echo "--layers 2 --dim 256 --heads 4 --kv-heads 1 --ffn 512 --vocab 4096 --ctx 512" ;;
	smollm2-135m) echo "--layers 3 --dim 192 --heads 3 --kv-heads 1 --ffn 512 --vocab 4096 --ctx 512" ;;
	*) echo "--layers 2 --vocab 4096" ;;
	esac
}
vocab_file() {
	case $1 in
	qwen2.5-0.5b) echo "$tokdata/qwen2.5.gguf" ;;
	llama-3.2-1b) echo "$tokdata/llama3.gguf" ;;
	smollm2-135m) echo "$tokdata/smollm2.gguf" ;;
	esac
}

port=$(( 20000 + RANDOM % 20000 ))
fails=0
printf '%-13s %-6s %6s | %9s %9s %9s %6s | %s\n' preset type vocab "rel diff" "rel self" tol argmax greedy
for preset in $presets; do
	for type in $types; do
		model=$work/$preset-$type.gguf
		flags=(--preset "$preset" --type "$type" --seed 7)
		tok="(synthetic vocabulary)"
		if [ "${AW_ARCH_REDUCED:-0}" = 1 ]; then
			read -r -a extra <<<"$(reduced "$preset")"
			flags+=("${extra[@]}")
		elif [ -n "$(vocab_file "$preset")" ] && [ -f "$(vocab_file "$preset")" ]; then
			flags+=(--tokenizer-from "$(vocab_file "$preset")")
			tok="(vocabulary $(basename "$(vocab_file "$preset")"))"
		fi
		"$build/tools/aw-mkmodel" --out "$model" "${flags[@]}" >/dev/null
		nv=$("$build/tools/aw-infer" -m "$model" --info | sed -nE 's/^vocabulary: +([0-9]+).*/\1/p')

		# a 12-token prompt of ids spread over the vocabulary (7919 is prime)
		prompt=""
		for x in 1 400 3000 20 77 512 9 31000 7 2024 88 16; do
			prompt+="$(( x * 7919 % nv )) "
		done
		prompt=${prompt% }
		ids=$(echo "$prompt" | tr ' ' ',')

		"$build/tools/aw-infer" -m "$model" --prompt-ids "$prompt" --logits -t 1 --kv-type f32 >"$work/aw.txt"
		"$build/tools/aw-infer" -m "$model" --prompt-ids "$prompt" --logits -t 1 --kv-type f32 \
			--dequant >"$work/ref.txt"
		"$build/tools/aw-infer" -m "$model" --prompt-ids "$prompt" -n "$gen" --temp 0 --ids \
			--ignore-eos -t 1 --kv-type f32 >"$work/aw-ids.txt"

		LD_LIBRARY_PATH="$peer${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
			"$peer/llama-server" -m "$model" --port "$port" -t 1 -c 256 -ctk f32 -ctv f32 \
			--no-warmup >"$work/server.log" 2>&1 &
		server_pid=$!
		up=0
		for _ in $(seq 1 300); do
			if curl -sf "localhost:$port/health" >/dev/null 2>&1; then up=1; break; fi
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.2
		done
		if [ "$up" != 1 ]; then
			echo "compare-arch: llama-server did not load $preset $type:" >&2
			tail -5 "$work/server.log" >&2
			fails=$((fails + 1))
			kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true
			server_pid=
			continue
		fi
		curl -sf "localhost:$port/completion" \
			-d "{\"prompt\":[$ids],\"n_predict\":1,\"n_probs\":$nv,\"temperature\":0,\"cache_prompt\":false}" \
			>"$work/peer.json"
		# agentwire's greedy tokens, teacher-forced: the peer's distribution
		# after the prompt and agentwire's first k tokens, for each k (one
		# request each). The token the server then samples is forced by a
		# logit bias to the text "a": llama-server refuses replies whose text
		# is not valid UTF-8 (a lone byte token), and its n_probs report the
		# unbiased distribution, which is all that is read here.
		printable=$("$build/tools/aw-infer" -m "$model" --tokenize a | awk '{print $NF}')
		python3 - "$port" "$ids" "$work/aw-ids.txt" "$printable" >"$work/peer-gen.json" <<'PY'
import json, sys, urllib.error, urllib.request
port, ids = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
steps = []
for a in [int(x) for x in open(sys.argv[3]).read().split()]:
    body = json.dumps({"prompt": ids, "n_predict": 1, "n_probs": 8, "temperature": 0,
                       "cache_prompt": True, "ignore_eos": True,
                       "logit_bias": [[int(sys.argv[4]), 1000]]}).encode()
    try:
        r = urllib.request.urlopen(urllib.request.Request(
            f"http://localhost:{port}/completion", body, {"Content-Type": "application/json"}))
        steps.append(json.load(r)["completion_probabilities"][0])
    except urllib.error.HTTPError as e:
        # 500 when the peer's own pick is a token whose text is not valid
        # UTF-8 alone (a lone byte): that step cannot be read from it
        steps.append({"error": e.read().decode(errors="replace")[:200]})
    ids.append(a)
json.dump(steps, sys.stdout)
PY
		kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true
		server_pid=

		if ! python3 - "$work" "$preset" "$type" "$nv" "$tok" <<'PY'
import json, math, statistics, sys
d, preset, typ, nv, tok = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def lsm(v):
    m = max(v); z = m + math.log(sum(math.exp(x - m) for x in v)); return [x - z for x in v]
raw = [float(x) for x in open(f"{d}/aw.txt")]
ref_raw = [float(x) for x in open(f"{d}/ref.txt")]
aw = lsm(raw)
peer = {e["id"]: e["logprob"] for e in
        json.load(open(f"{d}/peer.json"))["completion_probabilities"][0]["top_logprobs"]}
assert len(aw) == nv and len(peer) >= nv * 0.99, (len(aw), len(peer), nv)
# llama-server gives log p = logit - log Z from float probabilities: keep the
# tokens whose p is a normal float (log p > -80), and remove the constant
# log Z difference (the median of the differences) to compare logits
common = [i for i, p in peer.items() if p > -80.0]
c = statistics.median(aw[i] - peer[i] for i in common)
scale = max(abs(x) for x in raw)
diff = max(abs(aw[i] - peer[i] - c) for i in common) / scale
self_ = max(abs(a - r) for a, r in zip(raw, ref_raw)) / scale
tol = 3 * self_ if self_ > 1e-6 else 1e-4
aw_best = max(range(nv), key=lambda i: aw[i]); peer_best = max(peer, key=peer.get)
tol_lp = tol * scale  # the same bound in log-probability units, for margins
# greedy, teacher-forced: at each step agentwire's token must be the peer's
# argmax, or within 2 tol of it (a near tie that activation rounding flips)
aw_ids = [int(x) for x in open(f"{d}/aw-ids.txt").read().split()]
steps = json.load(open(f"{d}/peer-gen.json"))
same = ties = unread = 0
bad = []
ok_greedy = len(aw_ids) == len(steps) and len(steps) > 0
for k, (a, s) in enumerate(zip(aw_ids, steps)):
    if "error" in s:
        unread += 1
        continue
    lp = {e["id"]: e["logprob"] for e in s["top_logprobs"]}  # unbiased
    p = max(lp, key=lp.get)
    if a == p:
        same += 1
        continue
    margin = lp[p] - lp[a] if a in lp else float("inf")
    if margin <= 2 * tol_lp:
        ties += 1
    else:
        bad.append(f"step {k}: {a} vs {p} (margin {margin:.3g})")
ok_greedy = ok_greedy and not bad
note = f"{same} same, {ties} near ties, {unread} unreadable" + (f"; {'; '.join(bad)}" if bad else "")
ok = diff <= tol and ok_greedy  # greedy step 0 is the argmax, ties allowed
print(f"{preset:13s} {typ:6s} {nv:6d} | {diff:9.3g} {self_:9.3g} {tol:9.3g} "
      f"{'same' if aw_best == peer_best else 'DIFFER':>6s} | {note}"
      f"  {'ok' if ok else 'FAIL'} {tok}")
sys.exit(0 if ok else 1)
PY
		then
			fails=$((fails + 1))
		fi
	done
done
echo "# rel diff: max |logit(aw) - logit(llama.cpp)| / max |logit(aw)| over the vocabulary (tokens with"
echo "#   log p > -80), last of 12 prompt tokens; llama.cpp's logits from its log p up to one constant"
echo "# rel self: max |logit(aw) - logit(aw --dequant)| / max |logit| (agentwire's activation rounding);"
echo "#   tol = 3 x rel self; greedy: agentwire's 16 tokens, each the peer's pick after the same prefix,"
echo "#   or a near tie (<= 2 tol); unreadable: steps llama-server did not answer"
[ "$fails" -eq 0 ]
