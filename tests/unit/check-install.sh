#!/bin/sh
# check-install.sh BUILDDIR PREFIX BINDIR LIBDIR DATADIR CC UNITDIR — `meson
# install` into a temporary DESTDIR, then use the installed tree the way an
# operator and a client developer do, away from the build and source trees
# (TAP): the binaries run, aw-mkmodel writes a model that aw-infer --info
# reads, agentwire --check validates an installed example, a program builds
# against the installed header and pkg-config file, the systemd unit is there
# with the installed paths in it (and passes systemd-analyze verify).
set -u
build=$1 prefix=$2 bindir=$3 libdir=$4 datadir=$5 cc=$6 unitdir=$7
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() {
	n=$((n + 1))
	echo "not ok $n - $1"
	[ -s "$tmp/log" ] && sed 's/^/# /' "$tmp/log"
	fail=1
}
# run NAME CMD...: ok when CMD exits 0
run() {
	name=$1
	shift
	if "$@" >"$tmp/log" 2>&1; then ok "$name"; else notok "$name"; fi
}
abs() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }

dest=$tmp/root
run "meson install --destdir" meson install -C "$build" --no-rebuild --quiet --destdir "$dest"
bin=$dest$(abs "$bindir")
lib=$dest$(abs "$libdir")
share=$dest$(abs "$datadir")
units=$dest$(abs "$unitdir")
cd "$tmp" || exit 1 # nothing relative to the build tree

for b in aw-infer aw-mkmodel aw-loadgen aw-echod; do
	run "$b installed and runs" "$bin/$b" --help
done
run "aw-mkmodel (installed) writes a model" "$bin/aw-mkmodel" --out "$tmp/m.gguf" --preset tiny
if "$bin/aw-infer" -m "$tmp/m.gguf" --info >"$tmp/log" 2>&1 && grep -q . "$tmp/log"; then
	ok "aw-infer --info (installed) reads it"
else
	notok "aw-infer --info (installed) reads it"
fi
ex=$share/agentwire/examples
run "examples installed" test -f "$ex/demo.conf" -a -f "$ex/two-socket-100g.topo"
if [ -x "$bin/agentwire" ]; then
	if "$bin/agentwire" --check -c "$ex/two-socket-100g.conf" --topology \
		"$ex/two-socket-100g.topo" >"$tmp/log" 2>&1 && grep -q ": valid" "$tmp/log"; then
		ok "agentwire --check (installed) on an installed example"
	else
		notok "agentwire --check (installed) on an installed example"
	fi
	run "agentwire@.service installed" test -f "$units/agentwire@.service"
	if grep -q "^ExecStart=$(abs "$bindir")/agentwire -c " "$units/agentwire@.service"; then
		ok "the unit starts the installed binary"
	else
		grep ExecStart "$units/agentwire@.service" >"$tmp/log" 2>&1
		notok "the unit starts the installed binary"
	fi
else
	ok "# SKIP agentwire not built (no libdpdk)"
fi
for f in README.md CONFIG.md OPERATIONS.md CLIENT.md; do
	run "doc $f installed" test -s "$share/doc/agentwire/$f"
done

# a client program against the installed header, libraries and .pc file
pc=$(find "$dest" -name agentwire-client.pc | head -n 1)
if [ -z "$pc" ]; then
	notok "agentwire-client.pc installed"
elif ! command -v pkg-config >/dev/null 2>&1; then
	ok "# SKIP no pkg-config"
else
	ok "agentwire-client.pc installed"
	flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$dest \
		pkg-config --cflags --libs --static agentwire-client)
	# shellcheck disable=SC2086 # word splitting of the flags is wanted
	run "docs/examples/client-example.c builds with pkg-config flags alone" \
		$cc -o "$tmp/client-example" "$share/doc/agentwire/examples/client-example.c" $flags \
		${AW_SANITIZE:+$( [ "$AW_SANITIZE" = none ] || echo "-fsanitize=$AW_SANITIZE")}
	run "libaw_client.a installed in libdir" test -f "$lib/libaw_client.a"
fi
echo "1..$n"
exit $fail
