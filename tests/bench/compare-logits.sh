#!/usr/bin/env bash
# compare-logits.sh — agentwire's logits against llama.cpp's on the same
# GGUF file and prompt.
#
#   tests/bench/compare-logits.sh LLAMA_BIN_DIR [BUILD_DIR] [TYPE...]
#
# LLAMA_BIN_DIR holds a llama.cpp build's llama-server (the peer; its path
# is given, never fetched or built here). BUILD_DIR is agentwire's meson
# build (default: build). TYPEs are aw-mkmodel weight types (default: f32
# q8_0 q4_0). For each type it writes a stories15m-shaped model with
# aw-mkmodel, evaluates one prompt with `aw-infer --logits` and with
# llama-server (/completion, n_probs = the whole vocabulary, F32 KV cache),
# and prints the largest |difference| of the log-softmax over all tokens
# and over the 40 most likely, and whether the most likely token agrees.
# llama-server reports log-probabilities, not raw logits: they differ from
# logits by one constant per position, so log-softmax is what both can be
# compared on. Exits 77 (skip) when llama-server is absent.
# AW_COMPARE_SHAPE replaces "--preset stories15m" (aw-mkmodel shape flags),
# e.g. a dim that is a multiple of 256 so K-quant types stay K-quants
# (stories15m's 288 makes q4_k/q5_k/q6_k fall back to q5_0/q5_1/q8_0).
set -euo pipefail

peer=${1:-}
build=${2:-build}
shift $(( $# > 2 ? 2 : $# ))
types=("$@")
[ ${#types[@]} -eq 0 ] && types=(f32 q8_0 q4_0)

if [ -z "$peer" ] || [ ! -x "$peer/llama-server" ]; then
	echo "compare-logits: no llama-server in '${peer}': skipped" >&2
	exit 77
fi
for t in aw-mkmodel aw-infer; do
	[ -x "$build/tools/$t" ] || { echo "compare-logits: $build/tools/$t missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/compare-logits.XXXXXX)
server_pid=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

prompt="1 400 3000 20 77 512 9 31000 7 2024 88 16"
port=$(( 20000 + RANDOM % 20000 ))
for type in "${types[@]}"; do
	model=$work/s15-$type.gguf
	"$build/tools/aw-mkmodel" --out "$model" ${AW_COMPARE_SHAPE:---preset stories15m} --type "$type" --seed 7 >/dev/null
	"$build/tools/aw-infer" -m "$model" --prompt-ids "$prompt" --logits -t 1 --kv-type f32 >"$work/aw.txt"

	LD_LIBRARY_PATH="$peer${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
		"$peer/llama-server" -m "$model" --port "$port" -t 1 -c 256 -ctk f32 -ctv f32 \
		--no-warmup >"$work/server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 1 100); do
		curl -sf "localhost:$port/health" >/dev/null 2>&1 && break
		sleep 0.2
	done
	ids=$(echo "$prompt" | tr ' ' ',')
	curl -sf "localhost:$port/completion" \
		-d "{\"prompt\":[$ids],\"n_predict\":1,\"n_probs\":32000,\"temperature\":0,\"cache_prompt\":false}" \
		>"$work/peer.json"
	kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
	server_pid=

	python3 - "$work/aw.txt" "$work/peer.json" "$type" <<'PY'
import json, math, sys
aw = [float(x) for x in open(sys.argv[1])]
m = max(aw)
z = m + math.log(sum(math.exp(x - m) for x in aw))
aw_lp = [x - z for x in aw]
peer = json.load(open(sys.argv[2]))["completion_probabilities"][0]["top_logprobs"]
peer_lp = {e["id"]: e["logprob"] for e in peer}
common = [i for i in peer_lp if i < len(aw_lp)]
d_all = max(abs(aw_lp[i] - peer_lp[i]) for i in common)
top = sorted(range(len(aw_lp)), key=lambda i: -aw_lp[i])[:40]
d_top = max(abs(aw_lp[i] - peer_lp[i]) for i in top if i in peer_lp)
aw_best = top[0]
peer_best = max(peer_lp, key=peer_lp.get)
print(f"{sys.argv[3]:5s} tokens compared {len(common)}  max|dlogprob| all {d_all:.3g}  "
      f"top-40 {d_top:.3g}  argmax aw {aw_best} peer {peer_best} "
      f"{'agree' if aw_best == peer_best else 'DIFFER'}")
PY
done
