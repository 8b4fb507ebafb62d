#!/usr/bin/env bash
# bench-agent.sh — run bench-agent (CLASSIFY vs one prefill; constrained
# generation with and without fast-forward vs free generation) on a model
# written once with aw-mkmodel into AW_BENCH_MODELS (default
# /tmp/aw-bench-models; never into the repository).
#
#   tests/bench/bench-agent.sh [BUILD_DIR] [THREADS]
#
# Environment: AW_AGENT_PRESET (stories110m), AW_AGENT_TYPE (q8_0),
# AW_AGENT_TOKENIZER (a vocabulary GGUF whose tokenizer the model gets, e.g.
# the Qwen3 one tests/data/fetch-npm-data.sh writes: real Qwen tokens for the
# tool calls; default: the preset's synthetic vocabulary),
# AW_AGENT_SCHEMAS (JSONSchemaBench .jsonl.gz whose first schemas the
# constrained part adds; default Github_easy from ../shared/data when present),
# AW_AGENT_ARGS (extra options, e.g. "--classify 0 --reps 3 --n-schemas 4").
set -euo pipefail

build=${1:-build}
threads=${2:-1}
top=$(cd "$(dirname "$0")/../.." && pwd)
models=${AW_BENCH_MODELS:-/tmp/aw-bench-models}
preset=${AW_AGENT_PRESET:-stories110m}
type=${AW_AGENT_TYPE:-q8_0}
tokf=${AW_AGENT_TOKENIZER:-}
schemas=${AW_AGENT_SCHEMAS:-}
if [ -z "$schemas" ]; then
	for d in "$top/../shared/data/jsonschemabench" /work/shared/data/jsonschemabench; do
		[ -f "$d/Github_easy.jsonl.gz" ] && { schemas=$d/Github_easy.jsonl.gz; break; }
	done
fi

for t in tools/aw-mkmodel tests/bench/bench-agent; do
	[ -x "$build/$t" ] || { echo "bench-agent: $build/$t missing (build first)" >&2; exit 1; }
done
mkdir -p "$models"
model=$models/$preset-$type.gguf
mk=(--preset "$preset" --type "$type")
if [ -n "$tokf" ]; then
	model=$models/$preset-$type-$(basename "$tokf" .gguf)tok.gguf
	mk+=(--tokenizer-from "$tokf")
fi
[ -f "$model" ] || "$build/tools/aw-mkmodel" --out "$model" "${mk[@]}" >/dev/null
args=()
tmp=
if [ -n "$schemas" ]; then
	tmp=$(mktemp /tmp/bench-agent.XXXXXX)
	trap 'rm -f "$tmp"' EXIT
	zcat "$schemas" | head -200 >"$tmp" || true
	args+=(--schemas "$tmp")
fi
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $model${schemas:+; schemas: $schemas}"
# shellcheck disable=SC2086
"$build/tests/bench/bench-agent" "$model" --threads "$threads" "${args[@]}" ${AW_AGENT_ARGS:-}
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
