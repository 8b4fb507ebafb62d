#!/usr/bin/env bash
# bench-agent.sh — run bench-agent (CLASSIFY vs one prefill; constrained
# tool call vs free generation) on stories110m Q8_0, written once with
# aw-mkmodel into AW_BENCH_MODELS (default /tmp/aw-bench-models; never into
# the repository).
#
#   tests/bench/bench-agent.sh [BUILD_DIR] [THREADS]
#
# Environment: AW_AGENT_PRESET (stories110m), AW_AGENT_TYPE (q8_0),
# AW_AGENT_ARGS (extra options, e.g. "--prompt 200 --labels 8 --reps 5").
set -euo pipefail

build=${1:-build}
threads=${2:-1}
models=${AW_BENCH_MODELS:-/tmp/aw-bench-models}
preset=${AW_AGENT_PRESET:-stories110m}
type=${AW_AGENT_TYPE:-q8_0}

for t in tools/aw-mkmodel tests/bench/bench-agent; do
	[ -x "$build/$t" ] || { echo "bench-agent: $build/$t missing (build first)" >&2; exit 1; }
done
mkdir -p "$models"
model=$models/$preset-$type.gguf
[ -f "$model" ] || "$build/tools/aw-mkmodel" --out "$model" --preset "$preset" --type "$type" >/dev/null
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$build/tests/bench/bench-agent" "$model" --threads "$threads" ${AW_AGENT_ARGS:-}
