#!/bin/sh
# run-fuzz.sh EXE SEED_DIR [libFuzzer args...] — run one libFuzzer target for
# a bounded time. New inputs go to a scratch corpus in the build tree, never
# into the seed corpus in the source tree. Exit status is libFuzzer's: a crash,
# leak or timeout fails the test.
set -eu
exe=$1
seed=$2
shift 2
work="$(dirname "$exe")/corpus-$(basename "$exe")"
mkdir -p "$work"
if [ -d "$seed" ]; then
	exec "$exe" "$@" "$work" "$seed"
fi
exec "$exe" "$@" "$work"
