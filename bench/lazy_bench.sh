#!/bin/bash
# bench/lazy_bench.sh -- lazy moves (issue 11): four kernels with the access
# patterns of HPCC's DGEMM, STREAM, RandomAccess and FFT (bench/lazy_kernels.c),
# MIB each (default 512), moved n1 -> n2 right after their memory is filled,
# then run: eager, lazy without prefetch (--lazy-no-push --no-prefetch) and
# lazy with AMPoM (--lazy-no-push), side by side, medians of BENCH_RUNS (5).
# Push is off in both lazy columns so that the prefetch alone is measured.
#   frozen   the move's frozen time (migrctl)
#   total    from the move's request until the kernel ends (move + run)
#   run      the kernel's own time after the move
#   faults   remote fault requests (the fault service's log), and for
#            AMPoM the share prevented against no prefetch
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID, default 12), under
# flock /tmp/migr-bench.lock.  BENCH_MIB, BENCH_RUNS, BENCH_KERNELS.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
source "$TOP/test/lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-12}
V=$VCLUSTER
C=$MIGRCTL_BIN
STATE=/run/migr-vcluster$MIGR_VCLUSTER_ID
MIB=${BENCH_MIB:-512}
RUNS=${BENCH_RUNS:-5}
KERNELS=${BENCH_KERNELS:-dgemm stream random fft}
case ${1:-} in -h | --help) sed -n 2,16p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[[ $(id -u) == 0 ]] || { echo "lazy_bench: needs root"; exit 1; }
K=$SCRATCH/lazy_kernels
cc -O2 -o "$K" "$TOP/bench/lazy_kernels.c" || exit 1
vcluster_up 2 || { echo "lazy_bench: no virtual cluster"; exit 1; }

# one NAME KERNEL OPTS...: prints "frozen_ms total_ms run_ms faults"
one() {
    local kern=$1 i pid t0 t1 mv frozen run faults line
    shift
    local go=$SCRATCH/go out=$SCRATCH/k.out
    rm -f "$go" "$out" "$SCRATCH/k.pid"
    ( "$V" exec n1 "$C" run --pidfile "$SCRATCH/k.pid" -- "$K" "$kern" "$MIB" "$go" >"$out" 2>&1 ) &
    for ((i = 0; i < 600; i++)); do grep -qs ready "$out" && break; sleep 0.05; done
    pid=$(cat "$SCRATCH/k.pid")
    t0=$(date +%s%N)
    mv=$("$V" exec n1 "$C" migrate "$pid" --to n2 "$@") || { echo "lazy_bench: move failed: $mv" >&2; wait; return 1; }
    touch "$go"
    wait
    t1=$(date +%s%N)
    frozen=$(sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' <<<"$mv")
    run=$(sed -n 's/.*time \([0-9.]*\) s.*/\1/p' "$out")
    [[ -n $run ]] || { echo "lazy_bench: $kern did not finish: $(cat "$out")" >&2; return 1; }
    faults=0
    for ((i = 0; i < 50; i++)); do
        line=$(grep -h "pid $pid: fault service ended" "$STATE/n2/migrd.log" | tail -n 1)
        [[ -n $line || $* != *lazy* ]] && break
        sleep 0.1
    done
    [[ $line =~ \(([0-9]+)\ remote ]] && faults=${BASH_REMATCH[1]}
    # the kernel's run started at the go file: total = move + run
    awk -v t0="$t0" -v t1="$t1" -v mvs="$(sed -n 's/.*total \([0-9.]*\) ms.*/\1/p' <<<"$mv")" -v f="$frozen" \
        -v r="$run" -v n="$faults" 'BEGIN { printf "%s %.1f %.1f %s\n", f, mvs + r * 1000, r * 1000, n }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }

printf "lazy_bench: %s MiB, medians of %s (frozen ms / total ms / run ms / remote faults)\n" "$MIB" "$RUNS"
printf "%-8s | %-30s | %-30s | %-38s\n" kernel eager "lazy, no prefetch" "lazy + AMPoM (prevented)"
for kern in $KERNELS; do
    declare -A res=()
    for mode in eager noprefetch ampom; do
        case $mode in
        eager) opts=(--eager) ;;
        noprefetch) opts=(--lazy-no-push --no-prefetch) ;;
        ampom) opts=(--lazy-no-push) ;;
        esac
        : >"$SCRATCH/$mode.runs"
        for ((r = 0; r < RUNS; r++)); do
            one "$kern" "${opts[@]}" >>"$SCRATCH/$mode.runs" || exit 1
        done
        for f in 1 2 3 4; do
            res[$mode.$f]=$(awk -v f=$f '{ print $f }' "$SCRATCH/$mode.runs" | median)
        done
    done
    prevented=$(awk -v a="${res[ampom.4]}" -v n="${res[noprefetch.4]}" 'BEGIN { printf "%.1f %%", (n > 0 ? 100 * (1 - a / n) : 0) }')
    printf "%-8s | %7s %9s %9s %4s | %7s %9s %9s %6s | %7s %9s %9s %6s (%s)\n" "$kern" \
        "${res[eager.1]}" "${res[eager.2]}" "${res[eager.3]}" - \
        "${res[noprefetch.1]}" "${res[noprefetch.2]}" "${res[noprefetch.3]}" "${res[noprefetch.4]}" \
        "${res[ampom.1]}" "${res[ampom.2]}" "${res[ampom.3]}" "${res[ampom.4]}" "$prevented"
    unset res
done
