#!/bin/bash
# bench/migrate_bench.sh -- live-migration speed and frozen time (issue 4).
# Run with --help for the options.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIGR_BUILD:-$TOP}
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-6}
export MIGRD=${MIGRD:-$BUILD/migrd/migrd}
V=$TOP/test/vcluster
C=$BUILD/tools/migrctl
SIZES="10 100 1024"
REPS=5
KEEP_LOG=
LATENCY_MS=40      # the issue's fixed part of the frozen-time target
TARGET_MBS=1000    # >= 1 GB/s for the largest size

usage() {
    cat <<EOF
usage: bench/migrate_bench.sh [--sizes "MIB ..."] [--reps N] [--log FILE] [--help]

Measures live migration between two virtual nodes (test/vcluster up 2 --pin,
on cluster MIGR_VCLUSTER_ID, default 6; never 0, the shared one).  For each
size a test program (test/migrate/touch.c) touches that many MiB of private
memory and keeps running under 'migrctl run' on n1; it is then moved N times
back and forth n1 -> n2 -> n1 ... (every move asked at its home n1).  Each
move's figures come from 'migrctl migrate' (image bytes, frozen time =
from the freeze until the destination acknowledged the restore, rate =
bytes / frozen time) and migrd's log line for the move (phases: freeze,
capture, stream, restore+ack).  The program must then find its memory intact.

Printed: one line per move, then a table of medians with the issue's
targets: rate >= 1 GB/s for 1 GiB, frozen <= 40 ms + size / rate.  The load
average of the machine (uptime) is printed with every size: the machine is
shared, figures taken under load are not comparable.

options:
  --sizes "A B ..."  touched memory per run in MiB (default: "$SIZES")
  --reps N           moves per size; the median is printed (default: $REPS)
  --log FILE         also append the per-move lines and the table to FILE
  --help             this text

environment: MIGR_VCLUSTER_ID (default 6), MIGR_BUILD (build tree), MIGRD.
Exit status: 0 if every move succeeded and the memory stayed intact (the
targets are reported, not enforced), 1 otherwise, 2 on a usage error.
EOF
}

while (($#)); do
    case $1 in
    --sizes) SIZES=${2:?}; shift 2 ;;
    --reps) REPS=${2:?}; shift 2 ;;
    --log) KEEP_LOG=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "migrate_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $MIGR_VCLUSTER_ID =~ ^[1-9][0-9]?$ ]] || { echo "migrate_bench: MIGR_VCLUSTER_ID must be 1-99 (0 is shared)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "migrate_bench: needs root (namespaces, ptrace)" >&2; exit 2; }
[[ -x $MIGRD && -x $C ]] || { echo "migrate_bench: build first (make -j2): no $MIGRD or $C" >&2; exit 2; }

SCRATCH=$(mktemp -d /tmp/migr-bench.XXXXXX)
RUN_PID=
cleanup() {
    [[ -n $RUN_PID ]] && kill "$RUN_PID" 2>/dev/null
    "$V" down >/dev/null 2>&1
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*"; [[ -n $KEEP_LOG ]] && echo "$*" >>"$KEEP_LOG"; return 0; }
load() { sed 's/.*load average: //' /proc/loadavg 2>/dev/null | awk '{print $1, $2, $3}'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if ! cc -O2 -o "$SCRATCH/touch" "$TOP/test/migrate/touch.c" 2>"$SCRATCH/cc.out"; then
    cat "$SCRATCH/cc.out" >&2
    exit 1
fi
"$V" down >/dev/null 2>&1
if ! "$V" up 2 --pin >"$SCRATCH/up.out" 2>&1; then
    cat "$SCRATCH/up.out" >&2
    exit 1
fi
STATE=/run/migr-vcluster$MIGR_VCLUSTER_ID

# move_line NODE PID: the last move line of PID in NODE's migrd log
move_line() { grep "move pid $2 " "$STATE/$1/migrd.log" 2>/dev/null | tail -n 1; }

status=0
declare -A MED_RATE MED_FROZEN MED_BYTES LOADS
say "migrate_bench: cluster $MIGR_VCLUSTER_ID, 2 nodes pinned, $REPS moves per size, kernel $(uname -r), $(nproc) CPUs"
for mib in $SIZES; do
    out=$SCRATCH/run$mib.out
    rm -f "$SCRATCH/pid$mib" "$SCRATCH/rc$mib"
    ( exec "$V" exec n1 "$C" run --pidfile "$SCRATCH/pid$mib" -- "$SCRATCH/touch" "$mib" 3600 >"$out" 2>&1 ) &
    RUN_PID=$!
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$out" 2>/dev/null && break
        sleep 0.1
    done
    pid=$(cat "$SCRATCH/pid$mib" 2>/dev/null)
    if [[ -z $pid ]] || ! grep -q '^ready' "$out"; then
        say "$mib MiB: the test program did not start: $(tr '\n' '|' <"$out")"
        status=1
        continue
    fi
    LOADS[$mib]=$(load)
    say "--- $mib MiB touched (pid $pid), load average before: ${LOADS[$mib]}"
    : >"$SCRATCH/rate" ; : >"$SCRATCH/frozen"; : >"$SCRATCH/bytes"
    from=n1
    for ((r = 1; r <= REPS; r++)); do
        [[ $from == n1 ]] && to=n2 || to=n1
        sleep 0.5
        if ! res=$(timeout 120 "$V" exec n1 "$C" migrate "$pid" --to "$to" 2>&1); then
            say "  move $r $from->$to FAILED: $res"
            status=1
            break
        fi
        # "pid P moved to N: X MiB, frozen F ms (R MB/s), total T ms"
        bytes=$(sed -n 's/.*: \([0-9.]*\) MiB, frozen.*/\1/p' <<<"$res")
        frozen=$(sed -n 's/.*frozen \([0-9.]*\) ms.*/\1/p' <<<"$res")
        rate=$(sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$res")
        phases=$(move_line "$from" "$pid" | sed -n 's/.*total [0-9.]* ms (\(.*\))$/\1/p')
        dphases=$(grep "pid $pid restored here" "$STATE/$to/migrd.log" 2>/dev/null | tail -n 1 |
            sed -n 's/.*; \(read .*\))$/\1/p')
        [[ -n $dphases ]] && phases="$phases; at $to: $dphases"
        echo "$rate" >>"$SCRATCH/rate"; echo "$frozen" >>"$SCRATCH/frozen"; echo "$bytes" >>"$SCRATCH/bytes"
        say "  move $r $from->$to: $bytes MiB, frozen $frozen ms, $rate MB/s${phases:+ ($phases)}; load $(load)"
        from=$to
    done
    # end the program through its stub (found by our own scratch path, so
    # nothing of another cluster): SIGTERM reaches it wherever it runs
    for s in $(pgrep -f -- "--pidfile $SCRATCH/pid$mib" 2>/dev/null); do kill -TERM "$s" 2>/dev/null; done
    for ((i = 0; i < 300; i++)); do
        grep -qE '^(intact|CORRUPT)' "$out" && break
        sleep 0.1
    done
    wait "$RUN_PID" 2>/dev/null
    RUN_PID=
    if ! grep -q '^intact' "$out"; then
        say "  memory NOT intact after the moves: $(grep -v '^alive' "$out" | tail -n 2 | tr '\n' '|')"
        status=1
    fi
    MED_RATE[$mib]=$(median <"$SCRATCH/rate")
    MED_FROZEN[$mib]=$(median <"$SCRATCH/frozen")
    MED_BYTES[$mib]=$(median <"$SCRATCH/bytes")
done

say ""
say "median of $REPS moves n1<->n2 (rate = image bytes / frozen time; frozen = freeze .. destination's ack)"
say "$(printf '%-9s %10s %11s %11s %15s %6s  %s' size image rate frozen 'frozen target' result 'load (1 5 15 min)')"
for mib in $SIZES; do
    r=${MED_RATE[$mib]:--} f=${MED_FROZEN[$mib]:--} b=${MED_BYTES[$mib]:--}
    if [[ $r == - ]]; then
        say "$(printf '%-9s %10s' "${mib}MiB" 'no data')"
        continue
    fi
    # frozen target: 40 ms + size / bandwidth, with bandwidth the 1 GB/s target
    tgt=$(awk -v b="$b" -v l=$LATENCY_MS -v bw=$TARGET_MBS 'BEGIN { printf "%.1f", l + b * 1048576 / (bw * 1e6) * 1000 }')
    ok=ok
    awk -v f="$f" -v t="$tgt" 'BEGIN { exit !(f <= t) }' || ok=MISS
    if ((mib >= 1024)); then
        awk -v r="$r" -v t=$TARGET_MBS 'BEGIN { exit !(r >= t) }' || ok=MISS
    fi
    say "$(printf '%-9s %7s MiB %6s MB/s %8s ms %12s ms %6s  %s' "${mib}MiB" "$b" "$r" "$f" "<= $tgt" "$ok" "${LOADS[$mib]}")"
done
say "targets (issue 4): >= $TARGET_MBS MB/s for 1 GiB; frozen <= $LATENCY_MS ms + size / (1 GB/s)"
exit $status
