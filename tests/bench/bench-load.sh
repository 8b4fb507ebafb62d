#!/usr/bin/env bash
# tests/bench/bench-load.sh — cold weight-load bandwidth and time to first token.
#
#   sudo tests/bench/bench-load.sh [-b BUILD] [-f FILE.gguf] [-l LLAMA_BIN_DIR]
#                                  [-r REPS] [--qd N] [--rs SIZE] [--sweep] [--no-ttft]
#                                  [--no-bw] [--decode] [--nodes LIST]
#
# In one run, with the page cache dropped before every measurement
# (echo 3 > /proc/sys/vm/drop_caches), interleaved REPS times (median kept):
#   fio        --ioengine=io_uring --direct=1, same file, request size and depth
#              (plain and --fixedbufs; the better one is the device limit)
#   loader     bench-load --method uring (the defaults), read, and mmap + touch
#   replicas   two replicas (--nodes LIST, default 0,0: both on node 0 on a
#              one-node machine; 0,1 on a two-node one), copied vs read twice
#   TTFT       aw-infer --load uring from process start to the first token
#              (with and without --no-repack), and llama.cpp's llama-bench
#              (-p 4 -n 0) on the same file (skipped without -l)
# --sweep also runs fio and the loader over queue depths and request sizes.
# --no-bw skips the bandwidth table. --decode adds decode speed by where the
# repacked weights live (aw-infer --bench, 1 thread, REPS interleaved runs):
# repacked in place in the loader's hugetlb pages, repacked at load into the
# model's arena with the hugetlb pool present and with it emptied (ordinary
# pages + THP advice), and the file layout (no repack) in hugetlb pages.
#
# FILE defaults to a tinyllama-1.1b Q8_0 file written by aw-mkmodel in
# $AW_BENCH_DIR (default /var/tmp/aw-bench). The loader uses 2 MiB hugetlb
# pages when the pool can hold the file: the script raises
# /proc/sys/vm/nr_hugepages for the run (restored on exit) and loads once
# untimed, as an appliance reserves its pool at boot (see docs/BENCHMARKS.md).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
file=
llama=
reps=3
qd=32
rs=8M
sweep=0
ttft=1
bw=1
decode=0
nodes=0,0
usage() {
	sed -n '2,20p' "$0" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	-b) build=$2; shift 2 ;;
	-f) file=$2; shift 2 ;;
	-l) llama=$2; shift 2 ;;
	-r) reps=$2; shift 2 ;;
	--qd) qd=$2; shift 2 ;;
	--rs) rs=$2; shift 2 ;;
	--sweep) sweep=1; shift ;;
	--no-ttft) ttft=0; shift ;;
	--no-bw) bw=0; shift ;;
	--decode) decode=1; shift ;;
	--nodes) nodes=$2; shift 2 ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || usage
[ "$(id -u)" -eq 0 ] || { echo "bench-load.sh: needs root (drop_caches, hugepages)" >&2; exit 77; }
command -v fio >/dev/null || { echo "bench-load.sh: fio not installed (apt-get install fio)" >&2; exit 77; }
bl=$build/tests/bench/bench-load
infer=$build/tools/aw-infer
mkmodel=$build/tools/aw-mkmodel
[ -x "$bl" ] || { echo "bench-load.sh: build first ($bl missing)" >&2; exit 1; }

dir=${AW_BENCH_DIR:-/var/tmp/aw-bench}
mkdir -p "$dir"
if [ -z "$file" ]; then
	file=$dir/tinyllama-1.1b-q8_0.gguf
	if [ ! -f "$file" ]; then
		echo "writing $file"
		"$mkmodel" --out "$file" --preset tinyllama-1.1b --type q8_0 >/dev/null
	fi
fi
size=$(stat -L -c %s "$file")

# hugetlb pool big enough for the file (plus slack), restored on exit
old_huge=$(cat /proc/sys/vm/nr_hugepages)
need=$((2 * (size >> 21) + 16)) # two replicas for the replica runs
restore() { echo "$old_huge" >/proc/sys/vm/nr_hugepages; }
trap restore EXIT
if [ "$old_huge" -lt "$need" ]; then
	echo "$need" >/proc/sys/vm/nr_hugepages
fi
got=$(cat /proc/sys/vm/nr_hugepages)

drop() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "nan"}'; }
gbps_of() { grep -o '"gbps":[0-9.]*' | tail -1 | cut -d: -f2; }
to_bytes() { numfmt --from=iec "$1"; }

fio_gbps() { # qd rs extra...
	local q=$1 r=$2
	shift 2
	drop
	fio --name=aw --filename="$file" --ioengine=io_uring --direct=1 --rw=read --bs="$r" \
		--iodepth="$q" --size="$size" --output-format=terse --terse-version=3 "$@" 2>/dev/null |
		awk -F';' '{printf "%.3f\n", $7 * 1024 / 1e9}'
}
load_gbps() { # args to bench-load
	drop
	"$bl" "$file" --gguf "$@" 2>/dev/null | gbps_of
}

echo "# bench-load: $(basename "$file") ($size bytes), qd $qd x $rs, $reps reps, $(nproc) CPUs, $(uname -r)"
echo "# hugetlb pool: $got x 2 MiB (was $old_huge)"
"$bl" "$file" --gguf --nodes "$nodes" --verbose 2>&1 >/dev/null | sed "s/^/# /" # untimed: touches the pool once

declare -A res med
if [ "$bw" = 1 ]; then
names=(fio fio_fixedbufs uring uring_thp uring_4k uring_fixedbufs uring_prefault read mmap repl_copy repl_read)
for ((i = 0; i < reps; i++)); do
	res[fio]+="$(fio_gbps "$qd" "$rs") "
	res[fio_fixedbufs]+="$(fio_gbps "$qd" "$rs" --fixedbufs --registerfiles) "
	res[uring]+="$(load_gbps --qd "$qd" --rs "$rs") "
	res[uring_thp]+="$(load_gbps --qd "$qd" --rs "$rs" --hugepages thp) "
	res[uring_4k]+="$(load_gbps --qd "$qd" --rs "$rs" --hugepages off) "
	res[uring_fixedbufs]+="$(load_gbps --qd "$qd" --rs "$rs" --features-on fixed_bufs) "
	res[uring_prefault]+="$(load_gbps --qd "$qd" --rs "$rs" --features-on prefault) "
	res[read]+="$(load_gbps --method read --rs "$rs") "
	res[mmap]+="$(load_gbps --method mmap) "
	res[repl_copy]+="$(load_gbps --qd "$qd" --rs "$rs" --nodes "$nodes" --replicate copy) "
	res[repl_read]+="$(load_gbps --qd "$qd" --rs "$rs" --nodes "$nodes" --replicate read) "
done
printf '%-18s %10s   %s\n' "config" "GB/s(med)" "runs"
for n in "${names[@]}"; do
	med[$n]=$(echo "${res[$n]}" | tr ' ' '\n' | grep . | median)
	printf '%-18s %10s   %s\n' "$n" "${med[$n]}" "${res[$n]}"
done
limit=$(printf '%s\n%s\n' "${med[fio]}" "${med[fio_fixedbufs]}" | sort -g | tail -1)
awk -v l="$limit" -v u="${med[uring]}" -v m="${med[mmap]}" -v r="${med[read]}" 'BEGIN {
	printf "loader/fio(best) = %.2f   loader/mmap = %.2f   loader/read = %.2f\n", u / l, u / m, u / r }'
fi

if [ "$sweep" = 1 ]; then
	echo "# sweep: GB/s, fio --fixedbufs / fio / loader, 1 run each"
	printf '%-6s' "qd\\rs"
	sizes=(256K 512K 1M 2M 4M 8M)
	for r in "${sizes[@]}"; do printf '%20s' "$r"; done
	echo
	for q in 4 8 16 32 64; do
		printf '%-6s' "$q"
		for r in "${sizes[@]}"; do
			printf '%20s' "$(fio_gbps $q $r --fixedbufs --registerfiles)/$(fio_gbps $q $r)/$(load_gbps --qd $q --rs $r)"
		done
		echo
	done
fi

if [ "$decode" = 1 ]; then
	# decode tok/s by where the kernels' (repacked) weights live
	dec() { "$infer" -m "$file" "$@" --bench -p 16 -n 32 -t 1 --reps 1 2>/dev/null |
		grep -o '"decode_tok_s":[0-9.]*' | cut -d: -f2; }
	declare -A dd
	for ((i = 0; i < reps; i++)); do
		dd[inplace_hugetlb]+="$(dec --load uring) "
		dd[arena_hugetlb]+="$(dec) "
		echo 0 >/proc/sys/vm/nr_hugepages
		dd[arena_4k_thp]+="$(dec) "
		echo "$got" >/proc/sys/vm/nr_hugepages
		dd[norepack_hugetlb]+="$(dec --load uring --no-repack) "
	done
	echo "# decode tok/s, 1 thread, 16-token prompt, 32 tokens (median of $reps)"
	for n in inplace_hugetlb arena_hugetlb arena_4k_thp norepack_hugetlb; do
		med[$n]=$(echo "${dd[$n]}" | tr ' ' '\n' | grep . | median)
		printf '%-24s %8s   %s\n' "$n" "${med[$n]}" "${dd[$n]}"
	done
	awk -v a="${med[inplace_hugetlb]}" -v b="${med[arena_4k_thp]}" -v c="${med[arena_hugetlb]}" \
		'BEGIN { printf "in place (hugetlb) / arena in 4 KiB+THP = %.2f   / arena hugetlb = %.2f\n", a / b, a / c }'
fi

if [ "$ttft" = 1 ]; then
	# time to first token from process start: a 4-token prompt, then one
	# token (aw-infer --prompt-ids "1 2 3 4" -n 1; llama.cpp: llama-bench
	# -p 4 -n 0 -r 1 --no-warmup, whose prompt pass yields the first token's
	# logits), wall time of the whole process; cold = page cache dropped
	wall() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null </dev/null | tail -1; }
	t=$(nproc)
	ids=(--prompt-ids "1 2 3 4" -n 1 --temp 0 -t "$t")
	declare -A tt
	for ((i = 0; i < reps; i++)); do
		drop
		tt[aw_uring_cold]+="$(wall "$infer" -m "$file" --load uring "${ids[@]}") "
		drop
		tt[aw_uring_norepack_cold]+="$(wall "$infer" -m "$file" --load uring --no-repack "${ids[@]}") "
		tt[aw_uring_norepack_warm]+="$(wall "$infer" -m "$file" --load uring --no-repack "${ids[@]}") "
		drop
		tt[aw_mmap_norepack_cold]+="$(wall "$infer" -m "$file" --no-repack "${ids[@]}") "
		drop
		tt[aw_mmap_repack_cold]+="$(wall "$infer" -m "$file" "${ids[@]}") "
		if [ -n "$llama" ] && [ -x "$llama/llama-bench" ]; then
			drop
			tt[llama_cold]+="$(wall "$llama/llama-bench" -m "$file" -p 4 -n 0 -r 1 --no-warmup -t "$t") "
			tt[llama_warm]+="$(wall "$llama/llama-bench" -m "$file" -p 4 -n 0 -r 1 --no-warmup -t "$t") "
		fi
	done
	echo "# time to first token from process start, seconds (median of $reps)"
	for n in aw_uring_cold aw_uring_norepack_cold aw_uring_norepack_warm aw_mmap_norepack_cold \
		aw_mmap_repack_cold \
		llama_cold llama_warm; do
		[ -n "${tt[$n]:-}" ] || continue
		med[$n]=$(echo "${tt[$n]}" | tr ' ' '\n' | grep . | median)
		printf '%-24s %8s   %s\n' "$n" "${med[$n]}" "${tt[$n]}"
	done
	if [ -n "${med[llama_cold]:-}" ]; then
		awk -v a="${med[aw_uring_cold]}" -v b="${med[aw_uring_norepack_cold]}" \
			-v l="${med[llama_cold]}" 'BEGIN {
			printf "TTFT cold vs llama.cpp: repack %.2f, no-repack %.2f (target <= 0.5)\n", a / l, b / l }'
	else
		echo "llama.cpp: skipped (pass -l /path/to/llama.cpp/build/bin)"
	fi
fi
