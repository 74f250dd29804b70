#!/bin/bash
# Engine benchmark (issue 3): frozen time of `migr-ckpt reincarnate` — from
# the first freeze until the restored process runs — median of 5, for a
# process with 10 MiB and with 1 GiB of touched memory.
# Targets: <= 50 ms for 10 MiB, <= 1 s for 1 GiB (also shown with --thp-fill).
# BENCH_RUNS=N (default 5) and BENCH_CASES="10 1024 thp" (default: all)
# choose what runs; BENCH_KEEP=1 keeps the logs (path printed).
# Output: one line per size, e.g. "engine_bench: 10MiB frozen median 12.3 ms
# (runs ...) target 50 ms: ok", and exit 1 if a target is missed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${MIGR_BUILD:-$top}
CKPT=$B/tools/migr-ckpt
Z=$B/test/engine
RUNS=${BENCH_RUNS:-5}
WORK=$(mktemp -d /tmp/migr-engine-bench.XXXXXX)
DEP=
KEEP=${BENCH_KEEP:-}
trap '[ -n "$DEP" ] && kill -TERM "$DEP" 2>/dev/null
      if [ -n "$KEEP" ]; then echo "engine_bench: logs in $WORK"; else rm -rf "$WORK"; fi' EXIT

if [ "$(id -u)" != 0 ]; then
	echo "engine_bench: needs root (clone3 set_tid)"; exit 0
fi
for f in "$CKPT" "$Z/deputy" "$Z/zoo_hog"; do
	[ -x "$f" ] || { echo "engine_bench: $f not built"; exit 1; }
done

wait_for() {
	local t=$1; shift
	local end=$((SECONDS + t))
	while ! "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.05; done
}
lines() { [ -e "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }

# bench MIB TARGET_MS [MIGR-CKPT OPTION]
bench() {
	local mib=$1 target=$2 opt=${3:-} i med runs ok=ok
	local d=$WORK/$1$opt
	mkdir -p "$d"
	( cd "$d" && exec env ZOO_SECONDS=600 "$Z/deputy" -c "$CKPT" -p "$d/pid" -r "$d/results" \
		-l "$d/log" -v ${opt:+-a "$opt"} -- "$Z/zoo_hog" "$mib" > "$d/out" 2>&1 < /dev/null ) &
	DEP=$!
	wait_for 120 grep -qs READY "$d/out" || { echo "engine_bench: ${mib}MiB: target did not start"; return 1; }
	for ((i = 1; i <= RUNS; i++)); do
		kill -USR1 "$DEP"
		wait_for 120 lines "$d/results" "$i" || { echo "engine_bench: ${mib}MiB: run $i hung"; return 1; }
		sleep 0.3
	done
	kill -TERM "$DEP"; wait "$DEP" 2>/dev/null; DEP=
	if grep -q fail "$d/results"; then
		echo "engine_bench: ${mib}MiB: reincarnation failed: $(grep -m1 migr-ckpt: "$d/log")"
		return 1
	fi
	runs=$(awk '/frozen/ {print $2}' "$d/log" | tr '\n' ' ')
	med=$(awk '/frozen/ {print $2}' "$d/log" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	awk -v m="$med" -v t="$target" 'BEGIN {exit !(m <= t)}' || ok="MISSED"
	echo "engine_bench: ${mib}MiB touched${opt:+ ($opt)}: frozen median $med ms (runs: $runs) target $target ms: $ok"
	echo "engine_bench:   phases of the last run: $(tail -9 "$d/log" | grep -E 'freeze|capture|memory|kill|restore' | awk '{printf "%s %s ms; ", $1, $2}')"
	[ "$ok" = ok ]
}

# BENCH_CASES picks cases (default: all): 10, 1024, thp
CASES=${BENCH_CASES:-10 1024 thp}
rc=0
for c in $CASES; do
	case $c in
	10) bench 10 50 || rc=1 ;;
	1024) bench 1024 1000 || rc=1 ;;
	# the same 1 GiB written as transparent huge pages (migr-ckpt --thp-fill)
	thp) bench 1024 1000 --thp-fill || rc=1 ;;
	*) echo "engine_bench: unknown case $c (10, 1024, thp)"; rc=1 ;;
	esac
done
echo "engine_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
exit $rc
