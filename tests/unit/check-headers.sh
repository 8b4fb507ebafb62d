#!/bin/sh
# check-headers.sh CC SRCDIR BUILDDIR — compile every public header alone
# under -std=c11 -pedantic -Werror (libinput's test-build-pedantic): each
# header must include what it uses and stay plain C11. Internal headers
# (*-int.h) and headers that need DPDK (they include rte_*) are skipped here;
# the DPDK ones are compiled by the dataplane's own build.
set -eu
cc=$1
src=$2
build=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
for h in "$src"/inference/*.h "$src"/config/*.h "$src"/tools/*.h "$src"/dataplane/*.h; do
	[ -f "$h" ] || continue
	case "$h" in *-int.h) continue ;; esac
	grep -q '#include <rte_' "$h" && continue
	n=$((n + 1))
	printf '#include "%s"\n' "$h" >"$tmp/t.c"
	if ! "$cc" -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only -D_GNU_SOURCE \
		-I"$src/inference" -I"$src/config" -I"$src/tools" -I"$src/dataplane" -I"$build" \
		"$tmp/t.c" 2>"$tmp/err"; then
		echo "not ok $n - $h"
		sed 's/^/# /' "$tmp/err"
		fail=1
	else
		echo "ok $n - $h"
	fi
done
echo "1..$n"
exit $fail
