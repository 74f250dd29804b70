#!/usr/bin/env bash
# bench/auth_bench.sh -- what authentication costs (issue 8): cross-node
# latency and bandwidth of dicom (bench/osu_bench) and migration speed, with
# the cluster key (the default) and with --insecure, side by side in one run.
# Run with --help for the options.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIGR_BUILD:-$TOP}
# its own virtual cluster, apart from the suites' and the other benchmarks'
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-8}
export MIGRD=${MIGRD:-$BUILD/migrd/migrd}
export OMPI_MCA_mca_base_component_path="$BUILD/components:SYS_DEFAULT"
V=$TOP/test/vcluster
C=$BUILD/tools/migrctl
OSU=$BUILD/bench/osu_bench
ROUNDS=5 ITERS=3000 REPS=3 MAX_TIME=0.3 MIB=256 MOVES=4

usage() {
    cat <<EOF
usage: bench/auth_bench.sh [--rounds N] [--iters N] [--mib M] [--moves K] [--quick] [--help]

On two virtual nodes (test/vcluster up 2 --pin, cluster MIGR_VCLUSTER_ID,
default 8), ROUNDS rounds, each measuring both modes in alternating order:
  auth      the daemons as test/vcluster starts them: the map names the
            cluster key, every link and migration connection authenticated,
            a MAC on every frame and over every image
  insecure  the same daemons restarted with --insecure (no handshake, no MAC)
A round of a mode: osu_bench over btl dicom,self with one rank per node
(8 B latency, 64 KiB and 1 MiB bandwidth), then a program touching M MiB
(test/migrate/touch.c) moved K times n1 <-> n2 (image rate = bytes / frozen
time, and the frozen time, from 'migrctl migrate').  Printed: every round,
then the medians side by side and the loss of auth against insecure
(target: <= 5 %).  Run under 'flock /tmp/migr-bench.lock'.

options:
  --rounds N   rounds (default $ROUNDS)
  --iters N    osu_bench --iters (default $ITERS; --reps $REPS, --max-time $MAX_TIME)
  --mib M      memory of the moved program, MiB (default $MIB)
  --moves K    moves per round and mode (default $MOVES)
  --quick      --rounds 3 --iters 1000 --moves 2 --mib 64
EOF
}

while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --iters) ITERS=${2:?}; shift 2 ;;
    --mib) MIB=${2:?}; shift 2 ;;
    --moves) MOVES=${2:?}; shift 2 ;;
    --quick) ROUNDS=3 ITERS=1000 MOVES=2 MIB=64; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "auth_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "auth_bench: needs root (namespaces, ptrace)" >&2; exit 2; }
[[ -x $MIGRD && -x $C && -x $OSU ]] || { echo "auth_bench: build first (make -j2): $MIGRD, $C, $OSU" >&2; exit 2; }
((MIGR_VCLUSTER_ID != 0)) || { echo "auth_bench: not on cluster 0 (the shared one)" >&2; exit 2; }

# shellcheck source=../test/lib.sh
source "$TOP/test/lib.sh" # SCRATCH, at_exit: the cluster and the moved program go at exit
RUN_PID=
at_exit '[[ -n $RUN_PID ]] && kill "$RUN_PID"'
at_exit "'$V' down"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cc -O2 -o "$SCRATCH/touch" "$TOP/test/migrate/touch.c" || exit 1
"$V" down >/dev/null 2>&1
"$V" up 2 --pin >"$SCRATCH/up.out" 2>&1 || { cat "$SCRATCH/up.out" >&2; exit 1; }

# mode MODE: both daemons in MODE (auth | insecure), their link up
mode() {
    local n i extra=()
    [[ $1 == insecure ]] && extra=(--insecure)
    for n in n1 n2; do "$V" migrd-restart "$n" -- "${extra[@]}" >/dev/null || return 1; done
    for ((i = 0; i < 100; i++)); do
        "$V" exec n1 "$C" status 2>/dev/null | grep -qE '^n2 .* up ' && return 0
        sleep 0.1
    done
    echo "auth_bench: the link n1-n2 did not come up in mode $1" >&2
    return 1
}

# osu MODE: latency 8 B and bandwidth 64 KiB, 1 MiB into SCRATCH/MODE.*
osu() {
    local csv=$SCRATCH/osu.csv args
    # shellcheck disable=SC2207
    args=($("$V" mpirun-args) --map-by ppr:1:node --bind-to none --allow-run-as-root)
    timeout -k 10 300 mpirun "${args[@]}" -np 2 --mca pml ob1 --mca btl dicom,self \
        "$OSU" --csv --min 8 --max 1M --iters "$ITERS" --reps "$REPS" --max-time "$MAX_TIME" \
        >"$csv" 2>"$SCRATCH/osu.err" || { echo "osu_bench failed: $(tail -n 3 "$SCRATCH/osu.err")" >&2; return 1; }
    awk -F, '$1 == "latency" && $2 == 8 { print $3 }' "$csv" >>"$SCRATCH/$1.lat8"
    awk -F, '$1 == "bandwidth" && $2 == 65536 { print $3 }' "$csv" >>"$SCRATCH/$1.bw64k"
    awk -F, '$1 == "bandwidth" && $2 == 1048576 { print $3 }' "$csv" >>"$SCRATCH/$1.bw1m"
}

# moves MODE: K moves of a program of MIB MiB; rate and frozen time
moves() {
    local out=$SCRATCH/run.out pid i from=n1 to=n2 res
    rm -f "$SCRATCH/pid"
    ( exec "$V" exec n1 "$C" run --pidfile "$SCRATCH/pid" -- "$SCRATCH/touch" "$MIB" 3600 >"$out" 2>&1 ) &
    RUN_PID=$!
    for ((i = 0; i < 600; i++)); do grep -q '^ready' "$out" 2>/dev/null && break; sleep 0.1; done
    pid=$(cat "$SCRATCH/pid" 2>/dev/null)
    [[ -n $pid ]] || { echo "auth_bench: the test program did not start" >&2; return 1; }
    for ((i = 1; i <= MOVES; i++)); do
        sleep 0.3
        res=$(timeout 120 "$V" exec n1 "$C" migrate "$pid" --to "$to" 2>&1) || { echo "move failed: $res" >&2; break; }
        sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$res" >>"$SCRATCH/$1.rate"
        sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' <<<"$res" >>"$SCRATCH/$1.frozen"
        [[ $from == n1 ]] && from=n2 to=n1 || from=n1 to=n2
    done
    "$V" exec n1 "$C" migrate "$pid" --to n1 >/dev/null 2>&1
    kill "$RUN_PID" 2>/dev/null
    for s in $(pgrep -f -- "--pidfile $SCRATCH/pid" 2>/dev/null); do kill -TERM "$s" 2>/dev/null; done
    wait "$RUN_PID" 2>/dev/null
    RUN_PID=
}

echo "auth_bench: cluster $MIGR_VCLUSTER_ID, 2 nodes pinned, $ROUNDS rounds; osu_bench --iters $ITERS --reps $REPS;" \
    "$MOVES moves of $MIB MiB per round and mode; load $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for ((r = 1; r <= ROUNDS; r++)); do
    order=(auth insecure)
    ((r % 2)) || order=(insecure auth)
    for m in "${order[@]}"; do
        mode "$m" && osu "$m" && moves "$m" || status=1
        printf 'round %d %-8s lat8 %8s us  bw64k %8s MB/s  bw1m %8s MB/s  move %8s MB/s  frozen %8s ms\n' "$r" "$m" \
            "$(tail -n 1 "$SCRATCH/$m.lat8" 2>/dev/null)" "$(tail -n 1 "$SCRATCH/$m.bw64k" 2>/dev/null)" \
            "$(tail -n 1 "$SCRATCH/$m.bw1m" 2>/dev/null)" "$(tail -n "$MOVES" "$SCRATCH/$m.rate" 2>/dev/null | median)" \
            "$(tail -n "$MOVES" "$SCRATCH/$m.frozen" 2>/dev/null | median)"
    done
done

# row NAME FILE HIGHER_IS_BETTER: medians of both modes and the loss
row() {
    local a i
    a=$(median <"$SCRATCH/auth.$2" 2>/dev/null)
    i=$(median <"$SCRATCH/insecure.$2" 2>/dev/null)
    awk -v n="$1" -v a="$a" -v i="$i" -v h="$3" 'BEGIN {
        loss = (a == "-" || i == "-" || i == 0) ? "-" : sprintf("%.1f %%", (h ? (i - a) / i : (a - i) / i) * 100)
        printf "%-28s %12s %12s %10s\n", n, i, a, loss }'
}
echo
echo "medians over $ROUNDS rounds (loss: how much worse auth is than insecure; target <= 5 %)"
printf '%-28s %12s %12s %10s\n' metric insecure auth loss
row "latency 8 B (us)" lat8 0
row "bandwidth 64 KiB (MB/s)" bw64k 1
row "bandwidth 1 MiB (MB/s)" bw1m 1
row "move ${MIB} MiB: rate (MB/s)" rate 1
row "move ${MIB} MiB: frozen (ms)" frozen 0
exit $status
