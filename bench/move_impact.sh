#!/usr/bin/env bash
# bench/move_impact.sh -- what a big move does to another job's messages
# (issue 10): an 8-byte ping-pong of an MPI job between n1 and n2 over the
# dicom BTL, timed round trip by round trip, while a process of MIB MiB
# (default 1024) moves between n1 and n3, beside the same ping-pong with
# no move.  Run with --help for the options.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIGR_BUILD:-$TOP}
# its own virtual cluster, apart from the suites' (1-10) and other benches'
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-17}
export MIGRD=${MIGRD:-$BUILD/migrd/migrd}
export OMPI_MCA_mca_base_component_path="$BUILD/components:SYS_DEFAULT"
V=$TOP/test/vcluster
C=$BUILD/tools/migrctl
PP=$BUILD/bench/pingpong_trace
ROUNDS=3 MIB=1024 SECS=8 AT=3

usage() {
    cat <<EOF
usage: bench/move_impact.sh [--rounds N] [--mib M] [--seconds S] [--help]

On three virtual nodes (test/vcluster up 3 --pin, cluster MIGR_VCLUSTER_ID,
default 17): a process of M MiB (test/migrate/touch.c, started on n1 with
'migrctl run') and an MPI job of two ranks, n1 and n2, over btl dicom,self,
ping-ponging 8 bytes for S seconds (bench/pingpong_trace).  Each of N
rounds runs the job twice, in alternating order: once with no move, once
with the process moved at second $AT (n1 -> n3 in odd rounds, n3 -> n1 in
even ones: n1 is the source, then the destination).  The round trips are
split into before / during / after the move (in the run with no move: the
same window, by the clock).  Printed: every run, then the medians over the
rounds of each window's median, p99 and max half round trip, side by side.
Run under 'flock /tmp/migr-bench.lock'.

options:
  --rounds N    rounds (default $ROUNDS)
  --mib M       memory of the moved process, MiB (default $MIB)
  --seconds S   length of each ping-pong run (default $SECS, at least $((AT + 3)))
EOF
}

while (($#)); do
    case $1 in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --mib) MIB=${2:?}; shift 2 ;;
    --seconds) SECS=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "move_impact: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for v in ROUNDS MIB SECS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "move_impact: --${v,,} needs a positive whole number, not '${!v}'" >&2; exit 2; }
done
((SECS >= AT + 3)) || { echo "move_impact: --seconds must be at least $((AT + 3))" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "move_impact: needs root (namespaces, ptrace)" >&2; exit 2; }
[[ -x $MIGRD && -x $C && -x $PP ]] || { echo "move_impact: build first (make -j2): $MIGRD, $C, $PP" >&2; exit 2; }
((MIGR_VCLUSTER_ID != 0)) || { echo "move_impact: not on cluster 0 (the shared one)" >&2; exit 2; }

# shellcheck source=../test/lib.sh
source "$TOP/test/lib.sh" # SCRATCH, at_exit
unset MIGR_SOCKET
"$V" down >/dev/null 2>&1
"$V" up 3 --pin --slots 1 >"$SCRATCH/up.out" 2>&1 || { echo "move_impact: cannot bring up 3 nodes: $(tail -n 3 "$SCRATCH/up.out")" >&2; exit 1; }
at_exit "'$V' down >/dev/null 2>&1"
read -r -a SPREAD <<<"$("$V" mpirun-args)"
cc -O2 -o "$SCRATCH/touch" "$TOP/test/migrate/touch.c" || exit 1

"$V" exec n1 "$C" run -- "$SCRATCH/touch" "$MIB" 100000 >"$SCRATCH/touch.out" 2>&1 &
at_exit "kill $! 2>/dev/null"
for ((i = 0; i < 600; i++)); do grep -q ready "$SCRATCH/touch.out" 2>/dev/null && break; sleep 0.1; done
PID=$("$V" exec n1 "$C" ps 2>/dev/null | awk 'NR > 1 && /touch/ {print $1; exit}')
[[ -n $PID ]] && grep -q ready "$SCRATCH/touch.out" || { echo "move_impact: the $MIB MiB process did not start" >&2; exit 1; }
WHERE=n1

# one_run KIND ROUND: the ping-pong, the move (KIND move) or the same
# window without one (KIND still); appends "KIND PHASE MEDIAN P99 MAX".
one_run() {
    local kind=$1 r=$2 to out t0 took
    rm -f "$SCRATCH/begin" "$SCRATCH/end"
    ( TRACE_MARK_BEGIN=$SCRATCH/begin TRACE_MARK_END=$SCRATCH/end timeout $((SECS + 60)) \
        mpirun "${SPREAD[@]}" --host n1,n2 --map-by node -np 2 -x TRACE_MARK_BEGIN -x TRACE_MARK_END \
        --mca pml ob1 --mca btl dicom,self "$PP" "$SECS" </dev/null >"$SCRATCH/pp.out" 2>&1 ) &
    local job=$!
    sleep "$AT"
    : >"$SCRATCH/begin"
    t0=$(date +%s%N)
    if [[ $kind == move ]]; then
        to=n3
        [[ $WHERE == n3 ]] && to=n1
        if out=$(timeout 120 "$V" exec n1 "$C" migrate "$PID" --to "$to" 2>&1); then
            WHERE=$to
            echo "round $r: $out" >&2
        else
            echo "round $r: the move FAILED: $out" >&2
        fi
        took=$((($(date +%s%N) - t0) / 1000000))
        echo "$took" >"$SCRATCH/took"
    else
        sleep "$(awk -v ms="$(cat "$SCRATCH/took" 2>/dev/null || echo 1000)" 'BEGIN { printf "%.3f", ms / 1000 }')"
    fi
    : >"$SCRATCH/end"
    wait "$job" || { echo "round $r $kind: the ping-pong FAILED: $(tail -n 3 "$SCRATCH/pp.out" | tr '\n' '|')" >&2; return; }
    awk -v k="$kind" '/^phase/ { sub(":", "", $2); print k, $2, $7, $10, $13 }' "$SCRATCH/pp.out" >>"$SCRATCH/all"
    printf 'round %d %-5s %s\n' "$r" "$kind" "$(grep '^phase during' "$SCRATCH/pp.out")"
}

echo "move_impact: cluster $MIGR_VCLUSTER_ID, 3 nodes pinned; $ROUNDS rounds; a $MIB MiB process moved n1 <-> n3 at second $AT of $SECS; load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$SCRATCH/all"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then one_run move "$r"; one_run still "$r"; else one_run still "$r"; one_run move "$r"; fi
done

med() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
echo
echo "medians over $ROUNDS rounds of each window's figure (half round trips, us)"
printf '%-8s %-8s %12s %12s %12s\n' window figure "no move" "$MIB MiB move" ratio
for ph in before during after; do
    for f in 3:median 4:p99 5:max; do
        col=${f%%:*} name=${f#*:}
        s=$(awk -v p="$ph" -v c="$col" '$1 == "still" && $2 == p { print $c }' "$SCRATCH/all" | med)
        m=$(awk -v p="$ph" -v c="$col" '$1 == "move" && $2 == p { print $c }' "$SCRATCH/all" | med)
        ratio=$(awk -v s="$s" -v m="$m" 'BEGIN { if (s + 0 > 0 && m != "-") printf "%.2f", m / s; else print "-" }')
        printf '%-8s %-8s %12s %12s %12s\n' "$ph" "$name" "$s" "$m" "$ratio"
    done
done
