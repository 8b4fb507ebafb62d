#!/usr/bin/env bash
# mkmodel-peer.sh AW_MKMODEL — llama.cpp loads and runs what aw-mkmodel writes.
#
# Needs the peer's binaries: AW_LLAMA_BIN=/path/to/llama.cpp/build/bin (with
# llama-bench and llama-tokenize). Without it the test is skipped (exit 77);
# nothing is fetched or built here. For each file (tiny in every type, mixed
# types, tied embeddings, stories15m q8_0) llama-bench must load it and run a
# prompt and a generation; llama-tokenize must tokenize text with the
# synthetic vocabulary: BOS first, and whole-word pieces reached by merges.
set -euo pipefail

mk=$1
bin=${AW_LLAMA_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin/llama-bench" ] || [ ! -x "$bin/llama-tokenize" ]; then
	echo "mkmodel-peer: set AW_LLAMA_BIN to llama.cpp's build/bin to run this test" >&2
	exit 77
fi
dir=$(mktemp -d /tmp/mkmodel-peer-XXXXXX)
trap 'rm -rf "$dir"' EXIT

n=0
check_bench() { # name, aw-mkmodel args...
	local name=$1 out
	shift
	"$mk" --out "$dir/$name.gguf" "$@"
	if ! out=$("$bin/llama-bench" -m "$dir/$name.gguf" -p 8 -n 4 -r 1 -t 1 -o csv 2>"$dir/err"); then
		echo "not ok: llama-bench refused $name ($*):" >&2
		tail -20 "$dir/err" >&2
		exit 1
	fi
	# csv: a header, then one quoted row for the prompt test and one for generation
	if [ "$(echo "$out" | grep -c '^"')" -ne 2 ]; then
		echo "not ok: llama-bench produced no results for $name:" >&2
		echo "$out" >&2
		tail -20 "$dir/err" >&2
		exit 1
	fi
	n=$((n + 1))
	echo "ok $n - llama-bench runs $name ($*)"
}

check_bench tiny-f32 --preset tiny
check_bench tiny-f16 --preset tiny --type f16
check_bench tiny-bf16 --preset tiny --type bf16
check_bench tiny-q8_0 --preset tiny --type q8_0
check_bench tiny-q4_0-tied --preset tiny --type q4_0 --tied
check_bench tiny-mixed --preset tiny --type q4_0 --embd-type q8_0 --output-type bf16
check_bench gqa --dim 128 --heads 8 --kv-heads 2 --layers 1 --ffn 256 --vocab 1000 --type q8_0
check_bench aligned --preset tiny --type q8_0 --alignment 4096
check_bench stories15m-q8_0 --preset stories15m --type q8_0

# tokenizer: "<s>" first, and "▁the" as one piece (a chain of merges)
ids=$("$bin/llama-tokenize" -m "$dir/tiny-f32.gguf" -p "Once upon a time the cat" --ids --log-disable 2>/dev/null | tail -1)
echo "llama-tokenize: $ids"
case "$ids" in
"[1, "*) ;;
*)
	echo "not ok: no BOS first: $ids" >&2
	exit 1
	;;
esac
pieces=$("$bin/llama-tokenize" -m "$dir/tiny-f32.gguf" -p "Once upon a time the cat" --log-disable 2>/dev/null)
if ! echo "$pieces" | grep -q "' the'"; then
	echo "not ok: ' the' is not one piece:" >&2
	echo "$pieces" >&2
	exit 1
fi
n=$((n + 1))
echo "ok $n - llama-tokenize reads the synthetic vocabulary"

# llama.cpp's Python reader (gguf-py, next to build/bin in a source tree) is a
# second, independent parser: it must read the same metadata and shapes.
# Needs numpy (Debian: python3-numpy); skipped without it.
gguf_py=$(cd "$bin/../.." 2>/dev/null && pwd)/gguf-py
py=""
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import numpy' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -d "$gguf_py/gguf" ] && [ -n "$py" ]; then
	PYTHONPATH="$gguf_py" "$py" - "$dir/tiny-mixed.gguf" <<'PY'
import sys
import gguf
r = gguf.GGUFReader(sys.argv[1])
f = {k: v.contents() for k, v in r.fields.items()}
assert f["general.architecture"] == "llama", f["general.architecture"]
assert f["llama.embedding_length"] == 64 and f["llama.block_count"] == 2
assert f["llama.attention.head_count"] == 4 and f["llama.attention.head_count_kv"] == 2
assert f["tokenizer.ggml.model"] == "llama"
toks = f["tokenizer.ggml.tokens"]
assert len(toks) == 512 and toks[:3] == ["<unk>", "<s>", "</s>"] and toks[3] == "<0x00>"
t = {x.name: x for x in r.tensors}
assert list(t["token_embd.weight"].shape) == [64, 512]
assert t["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
assert t["output.weight"].tensor_type == gguf.GGMLQuantizationType.BF16
assert list(t["blk.1.ffn_down.weight"].shape) == [192, 64]
assert t["blk.1.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.Q4_0
assert len(r.tensors) == 21
PY
	n=$((n + 1))
	echo "ok $n - gguf-py reads the metadata and tensor shapes"
else
	echo "# gguf-py or numpy missing: the Python reader check is skipped"
fi
