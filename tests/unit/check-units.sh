#!/bin/sh
# check-units.sh UNIT BINDIR AGENTWIRE — `systemd-analyze verify` on the
# generated agentwire@.service (TAP). The unit's ExecStart names the
# installed path (BINDIR/agentwire), which need not exist here: a copy with
# that path pointed at the built AGENTWIRE is verified as instance "test".
# Any warning about the unit (unknown key, bad value) fails, not only errors.
# A deliberately broken copy must fail too, so the check can fail.
set -u
unit=$1 bindir=$2 aw=$3
case $aw in /*) ;; *) aw=$(pwd)/$aw ;; esac
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "1..0 # SKIP no systemd-analyze"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
# verify NAME WANT(0 clean | 1 problems) FILE
verify() {
	n=$((n + 1))
	systemd-analyze verify --man=no "$3" >"$tmp/log" 2>&1
	rc=$?
	# systemd-analyze also reports on units it pulls in; only ours count
	if [ $rc -eq 0 ] && ! grep -q "agentwire" "$tmp/log"; then got=0; else got=1; fi
	if [ "$got" -eq "$2" ]; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1 (systemd-analyze exit $rc)"
		sed 's/^/# /' "$tmp/log"
		fail=1
	fi
}
mkdir "$tmp/u" "$tmp/bad"
sed "s#$bindir/agentwire#$aw#g" "$unit" >"$tmp/u/agentwire@.service"
verify "agentwire@.service verifies clean" 0 "$tmp/u/agentwire@test.service"
sed 's/^Type=notify$/Type=notifi/' "$tmp/u/agentwire@.service" >"$tmp/bad/agentwire@.service"
verify "a unit with a bad Type= is caught" 1 "$tmp/bad/agentwire@test.service"
n=$((n + 1))
bad=0
for k in "Type=notify" "Restart=on-failure" "LimitMEMLOCK=infinity" "WatchdogSec=" \
	"CapabilityBoundingSet=CAP_IPC_LOCK CAP_NET_ADMIN"; do
	grep -q "^$k" "$unit" || { echo "# missing $k"; bad=1; }
done
[ $bad -eq 0 ] || { echo "not ok $n - the unit has Type=notify, restart, memlock, watchdog, caps"; fail=1; }
[ $bad -eq 0 ] && echo "ok $n - the unit has Type=notify, restart, memlock, watchdog, caps"
echo "1..$n"
exit $fail
