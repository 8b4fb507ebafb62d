#!/bin/sh
# check-agentwire.sh AGENTWIRE SRCDIR — the agentwire binary's command line
# and --check, as an operator runs them (TAP): exit 0 for a valid config
# with the plan on stdout, 1 for an invalid one with file:line problems on
# stderr, 2 for usage errors. --check never starts DPDK, so no root needed.
set -u
aw=$1
src=$2
ex=$src/config/examples
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0

# case NAME WANT_STATUS GREP_PATTERN ARGS...
case_() {
	name=$1 want=$2 pat=$3
	shift 3
	n=$((n + 1))
	"$aw" "$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -eq "$want" ] && cat "$tmp/out" "$tmp/err" | grep -q -- "$pat"; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name (exit $got, want $want; pattern '$pat')"
		sed 's/^/# /' "$tmp/out" "$tmp/err"
		fail=1
	fi
}

case_ "two-socket example is valid on its described machine" 0 "two-socket-100g.conf: valid" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo"
case_ "the plan names lcore, CPU and node" 0 "48-60  51-63 1     group 3 workers (13)" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo"
case_ "a KV cache too big for node 1" 1 "node 1 needs" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo" \
	--set group.3.kv_cache=200G
case_ "a group across nodes" 1 "group.1.lcores=18-33: error: \[group 1\]: CPUs 32-33 are not on node 0" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo" \
	--set group.1.lcores=18-33
printf '[dataplane]\nlcores 1\nburst = 8x\n[grop 0]\n' >"$tmp/bad.conf"
case_ "all problems at once, with lines" 1 "7 errors, 0 warnings" --check -c "$tmp/bad.conf"
case_ "missing '=' is line 2" 1 "bad.conf:2: error: missing '='" --check -c "$tmp/bad.conf"
case_ "did you mean" 1 "did you mean \[group 0\]" --check -c "$tmp/bad.conf"
case_ "no -c" 2 "no config file" --check
case_ "unknown option" 2 "unknown option" --check -c x --frobnicate
case_ "bad --set" 2 "expected section.key=value" --check -c x --set burst=1
case_ "--topology without --check" 2 "only works with --check" -c x --topology y
case_ "missing topology file" 1 "topology" --check -c "$ex/demo.conf" --topology "$tmp/none"
case_ "--help" 0 "usage: " --help
case_ "--version" 0 "agentwire " --version
# --host (config/host.c; the findings themselves: tests/unit/test-host.c)
case_ "--host without --check" 2 "only works with --check" -c x --host
case_ "--host-root without --host" 2 "only works with --host" --check -c x --host-root /
case_ "--host on an empty machine: blockers, exit 1" 1 "BLOCKER: \[port 0\] no PCI device 0000:17:00.0" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo" --host \
	--host-root "$tmp/empty-root"
case_ "--host lists the fix" 1 "fix: dpdk-hugepages.py --pagesize 1G --node 1" \
	--check -c "$ex/two-socket-100g.conf" --topology "$ex/two-socket-100g.topo" --host \
	--host-root "$tmp/empty-root"
echo "1..$n"
exit $fail
