#!/usr/bin/env bash
# bench/mosix_bench.sh -- what moving the ranks of a running MPI job costs it
# (issue 9), in the shape of the MOSIX paper's Tables 1 and 2, and the same
# kernels over dicom against tcp.  Run with --help for the options.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MIGR_BUILD:-$TOP}
# its own virtual cluster, apart from the suites' (1-10) and other benches'
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-12}
export MIGRD=${MIGRD:-$BUILD/migrd/migrd}
export OMPI_MCA_mca_base_component_path="$BUILD/components:SYS_DEFAULT"
V=$TOP/test/vcluster
C=$BUILD/tools/migrctl
K=$BUILD/bench/kernels
KERNELS="cg mg ft ep" REPS=5 MIB=100 ITERS= PINGPONG=10 BW=1000

usage() {
    cat <<EOF
usage: bench/mosix_bench.sh [--kernels "cg mg ft ep"] [--reps N] [--mib M]
                            [--iters N] [--pingpong P] [--bw MB/s] [--quick] [--help]

On eight virtual nodes (test/vcluster up 8 --pin, cluster MIGR_VCLUSTER_ID,
default 12), jobs of bench/kernels (CG-, MG-, FT- and EP-like kernels, np 4,
M MiB per rank) start on n1..n4, one rank per node, as in the MOSIX paper
(shared/seeds/mosix-resource-centric-migration-for-mpi.txt, section 4):
  Table 1  run time over btl dicom with 0, 1, 2, 3, 4 ranks moved once,
           right after their data is set up, each from nI to the idle
           n(I+4) (the moves of one run at the same time); overhead against 0
  Table 2  rank 1 moved P times n2 -> n6 and P times back while the job
           runs: run time, and per move its size, frozen time, total time
           and speed (MiB / frozen time) from 'migrctl migrate'
  tcp      the same job without moves over btl tcp (odls default) against
           dicom (odls migr): time ratio dicom / tcp (target <= 1.10)
Each of the N rounds runs every configuration once, in alternating order
(reversed every other round); medians are printed.  Every run's checksum
must equal that kernel's first dicom run without moves (the kernels' result
does not depend on where ranks ran): a difference fails the bench.
The frozen-time target for a move of the Table 2 rank is 40 ms + its size
divided by the bandwidth of issue 4's bench, measured in the same run: each
round also moves a plain program of M MiB (test/migrate/touch.c under
'migrctl run') n2 -> n6 -> n2 (--bw, default $BW MB/s, if that fails).
Run under 'flock /tmp/migr-bench.lock'.

options:
  --kernels "A B"  kernels to run (default "$KERNELS")
  --reps N         rounds (default $REPS)
  --mib M          memory per rank in MiB (default $MIB)
  --iters N        iterations of every kernel (default: the kernel's own)
  --pingpong P     Table 2: moves each way (default $PINGPONG)
  --bw MB/s        bandwidth for the frozen-time target (default $BW)
  --quick          --reps 1 --kernels "cg ep" --pingpong 2
  --help           this text
Exit status: 0 if every run ended 0 with the right checksum and every move
succeeded (the targets are reported, not enforced), 1 otherwise, 2 on a
usage error.
EOF
}

while (($#)); do
    case $1 in
    --kernels) KERNELS=${2:?}; shift 2 ;;
    --reps) REPS=${2:?}; shift 2 ;;
    --mib) MIB=${2:?}; shift 2 ;;
    --iters) ITERS=${2:?}; shift 2 ;;
    --pingpong) PINGPONG=${2:?}; shift 2 ;;
    --bw) BW=${2:?}; shift 2 ;;
    --quick) REPS=1 KERNELS="cg ep" PINGPONG=2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "mosix_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for v in REPS MIB PINGPONG BW; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "mosix_bench: --${v,,} needs a positive whole number, not '${!v}'" >&2; exit 2; }
done
[[ -z $ITERS || $ITERS =~ ^[1-9][0-9]*$ ]] || { echo "mosix_bench: --iters needs a positive whole number, not '$ITERS'" >&2; exit 2; }
for k in $KERNELS; do
    [[ $k =~ ^(cg|mg|ft|ep)$ ]] || { echo "mosix_bench: unknown kernel '$k' (cg, mg, ft, ep)" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "mosix_bench: needs root (namespaces, ptrace)" >&2; exit 2; }
[[ -x $MIGRD && -x $C && -x $K ]] || { echo "mosix_bench: build first (make -j2): no $MIGRD, $C or $K" >&2; exit 2; }

SCRATCH=$(mktemp -d /tmp/migr-mosix.XXXXXX)
JOB_PID=
cleanup() {
    [[ -n $JOB_PID ]] && kill -TERM "$JOB_PID" 2>/dev/null
    "$V" down >/dev/null 2>&1
    [[ -n ${MOSIX_BENCH_KEEP:-} ]] && echo "mosix_bench: kept $SCRATCH" >&2 || rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load() { awk '{print $1, $2, $3}' /proc/loadavg; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

"$V" down >/dev/null 2>&1
if ! "$V" up 8 --pin --slots 1 >"$SCRATCH/up.out" 2>&1; then
    cat "$SCRATCH/up.out" >&2
    exit 1
fi
read -r -a SPREAD <<<"$("$V" mpirun-args)"
HOSTS=(--host n1,n2,n3,n4 --map-by node -np 4)
DICOM=(--mca odls migr --mca odls_migr_deputy "$C" --mca pml ob1 --mca btl dicom,self)
TCP=(--mca pml ob1 --mca btl tcp,self)
status=0

# move RANK TO: ask rank RANK's home (nRANK+1) to move it; appends
# migrctl's line ("... moved to N: X MiB, frozen F ms (R MB/s), total T ms")
move() {
    local out
    if out=$(timeout 120 "$V" exec "n$(($1 + 1))" "$C" migrate "$JOB" "$1" --to "$2" 2>&1); then
        echo "$out" >>"$SCRATCH/moves"
    else
        echo "move of rank $1 to $2 FAILED: $out" | tee -a "$SCRATCH/failed" >&2
    fi
}

# run KERNEL CONFIG: one job; CONFIG is tcp, 0..4 (ranks moved once) or
# pp (Table 2).  Prints "TIME CHECKSUM" or nothing on a failure.
run() {
    local kern=$1 cfg=$2 i r args=("${DICOM[@]}")
    [[ $cfg == tcp ]] && args=("${TCP[@]}")
    rm -f "$SCRATCH/ready" "$SCRATCH/rc" "$SCRATCH/moves" "$SCRATCH/failed"
    ( timeout 900 mpirun "${SPREAD[@]}" "${HOSTS[@]}" "${args[@]}" "$K" "$kern" --mib "$MIB" \
        ${ITERS:+--iters "$ITERS"} --ready "$SCRATCH/ready" </dev/null >"$SCRATCH/job.out" 2>&1
      echo $? >"$SCRATCH/rc" ) &
    JOB_PID=$!
    if [[ $cfg != tcp && $cfg != 0 ]]; then
        for ((i = 0; i < 1200; i++)); do
            [[ -e $SCRATCH/ready || -e $SCRATCH/rc ]] && break
            sleep 0.05
        done
        JOB=$("$V" exec n1 "$C" ps 2>/dev/null | awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "JOB") c = i; next } $c ~ /^\[/ { print $c; exit }')
        if [[ ! -e $SCRATCH/ready || -z $JOB ]]; then
            echo "$kern $cfg: the job did not get ready: $(tail -n 3 "$SCRATCH/job.out" | tr '\n' '|')" >&2
        elif [[ $cfg == pp ]]; then
            for ((i = 0; i < PINGPONG; i++)); do
                move 1 n6
                [[ -e $SCRATCH/failed ]] || move 1 n2
                [[ -e $SCRATCH/failed ]] && break
            done
        else
            for ((r = 0; r < cfg; r++)); do move $r "n$((r + 5))" & done
            wait $(jobs -p | grep -vx "$JOB_PID")
        fi
    fi
    wait "$JOB_PID"
    JOB_PID=
    local line
    line=$(grep '^kernels: ' "$SCRATCH/job.out")
    if [[ $(cat "$SCRATCH/rc" 2>/dev/null) != 0 || -z $line || -e $SCRATCH/failed ]]; then
        echo "$kern $cfg: FAILED (mpirun $(cat "$SCRATCH/rc" 2>/dev/null)): $(grep -v '^ \|^--' "$SCRATCH/job.out" | head -n 4 | tr '\n' '|')" >&2
        return 1
    fi
    sed -n 's/.* time \([0-9.]*\) s checksum \([0-9a-f]*\)$/\1 \2/p' <<<"$line"
}

# plain: issue 4's measure in the same run -- a program of M MiB touched,
# not MPI, under 'migrctl run' on n2, moved to n6 and back; appends the
# rates (image MB / frozen s) to plain.rate
cc -O2 -o "$SCRATCH/touch" "$TOP/test/migrate/touch.c" || exit 1
plain() {
    local pid i out to
    rm -f "$SCRATCH/plain.pid"
    ( timeout 600 "$V" exec n2 "$C" run --pidfile "$SCRATCH/plain.pid" -- "$SCRATCH/touch" "$MIB" 600 \
        >"$SCRATCH/plain.out" 2>&1 ) &
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$SCRATCH/plain.out" 2>/dev/null && break
        sleep 0.1
    done
    pid=$(cat "$SCRATCH/plain.pid" 2>/dev/null)
    if [[ -z $pid ]] || ! grep -q '^ready' "$SCRATCH/plain.out"; then
        echo "plain: the test program did not start: $(tr '\n' '|' <"$SCRATCH/plain.out")" >&2
        return 1
    fi
    for to in n6 n2; do
        sleep 0.3
        if ! out=$(timeout 120 "$V" exec n2 "$C" migrate "$pid" --to "$to" 2>&1); then
            echo "plain: move to $to FAILED: $out" >&2
            return 1
        fi
        sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$out" >>"$SCRATCH/plain.rate"
    done
    # its stub passes SIGTERM on to it wherever it runs; it then checks its memory
    for s in $(pgrep -f -- "--pidfile $SCRATCH/plain.pid"); do kill -TERM "$s" 2>/dev/null; done
    for ((i = 0; i < 300; i++)); do
        grep -qE '^(intact|CORRUPT)' "$SCRATCH/plain.out" && break
        sleep 0.1
    done
    grep -q '^intact' "$SCRATCH/plain.out" || { echo "plain: memory not intact: $(tail -n 2 "$SCRATCH/plain.out" | tr '\n' '|')" >&2; return 1; }
}

CONFIGS=(0 1 2 3 4 pp tcp)
declare -A REF
echo "mosix_bench: cluster $MIGR_VCLUSTER_ID, 8 nodes pinned on $(nproc) CPUs, np 4, $MIB MiB per rank," \
    "$REPS rounds, kernels: $KERNELS; load $(load)"
for ((round = 1; round <= REPS; round++)); do
    order=("${CONFIGS[@]}")
    ((round % 2 == 0)) && order=(tcp pp 4 3 2 1 0)
    plain || status=1
    for kern in $KERNELS; do
        for cfg in "${order[@]}"; do
            if ! res=$(run "$kern" "$cfg"); then
                status=1
                continue
            fi
            read -r t sum <<<"$res"
            [[ -z ${REF[$kern]:-} && $cfg == 0 ]] && REF[$kern]=$sum
            if [[ -n ${REF[$kern]:-} && $sum != "${REF[$kern]}" ]]; then
                echo "$kern $cfg: WRONG RESULT: checksum $sum, $kern's first run gave ${REF[$kern]}" >&2
                status=1
            fi
            echo "$t" >>"$SCRATCH/t.$kern.$cfg"
            [[ -s $SCRATCH/moves ]] && cat "$SCRATCH/moves" >>"$SCRATCH/m.$kern.$cfg"
            printf '  round %d %s %-3s %7.2f s  %s%s\n' "$round" "$kern" "$cfg" "$t" "$sum" \
                "$([[ -s $SCRATCH/moves ]] && echo ", $(wc -l <"$SCRATCH/moves") moves")"
        done
    done
done

med() { [[ -s $SCRATCH/$1 ]] && median <"$SCRATCH/$1" || echo -; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%+.1f %%", (a / b - 1) * 100 }'; }
# field N of migrctl's move lines: 1 MiB, 2 frozen ms, 3 MB/s, 4 total ms
mfield() {
    [[ -s $SCRATCH/$1 ]] || { echo -; return; }
    sed -n 's/.*: \([0-9.]*\) MiB, frozen \([0-9.]*\) ms (\([0-9.]*\) MB\/s), total \([0-9.]*\) ms.*/\1 \2 \3 \4/p' "$SCRATCH/$1" |
        awk -v f="$2" '{print $f}' | median
}

echo
echo "Table 1: run time (s, median of $REPS) over btl dicom with 0-4 ranks moved once right after set-up"
printf '%-6s %9s %16s %16s %16s %16s %10s\n' kernel none 1 2 3 4 "worst"
for kern in $KERNELS; do
    base=$(med "t.$kern.0") worst=-
    row=$(printf '%-6s %9s' "$kern" "$base")
    for n in 1 2 3 4; do
        v=$(med "t.$kern.$n")
        row+=$(printf ' %16s' "$v ($(pct "$v" "$base"))")
        worst=$(awk -v w="$worst" -v v="$(pct "$v" "$base" | tr -d ' %+')" 'BEGIN { if (w == "-" || v + 0 > w + 0) print v; else print w }')
    done
    printf '%s %10s\n' "$row" "${worst}%"
done
echo "target: overhead <= +2 % (MOSIX: +1.5 % MG ... +4.5 % CG)"

BW_RUN=$(med plain.rate)
[[ $BW_RUN != - ]] && BW=$BW_RUN
echo
echo "Table 2: rank 1 moved $PINGPONG x 2 times n2 <-> n6 (medians)"
printf '%-6s %10s %12s %10s %10s %12s %10s %12s %s\n' kernel "no moves" "with moves" "size MiB" "frozen ms" "total ms" "MiB/s" "target ms" ""
for kern in $KERNELS; do
    size=$(mfield "m.$kern.pp" 1) frozen=$(mfield "m.$kern.pp" 2) total=$(mfield "m.$kern.pp" 4)
    speed=$(awk -v s="$size" -v f="$frozen" 'BEGIN { if (s == "-" || f == "-" || f == 0) print "-"; else printf "%.0f", s / f * 1000 }')
    target=$(awk -v s="$size" -v b="$BW" 'BEGIN { if (s == "-") print "-"; else printf "%.1f", 40 + s * 1.048576 / b * 1000 }')
    verdict=$(awk -v f="$frozen" -v t="$target" 'BEGIN { if (f == "-" || t == "-") print ""; else if (f + 0 <= t + 0) print "met"; else print "MISSED" }')
    printf '%-6s %10s %12s %10s %10s %12s %10s %12s %s\n' "$kern" "$(med "t.$kern.0")" "$(med "t.$kern.pp")" \
        "$size" "$frozen" "$total" "$speed" "$target" "$verdict"
done
echo "target: frozen <= 40 ms + size / $BW MB/s: the median rate of a plain $MIB MiB program moved n2 <-> n6" \
    "in this run (issue 4's bench; --bw if it could not be measured)"

echo
echo "dicom (odls migr) against tcp (odls default), no moves: run time (s, median of $REPS)"
printf '%-6s %10s %10s %12s\n' kernel dicom tcp "dicom/tcp"
for kern in $KERNELS; do
    d=$(med "t.$kern.0") t=$(med "t.$kern.tcp")
    printf '%-6s %10s %10s %12s\n' "$kern" "$d" "$t" \
        "$(awk -v a="$d" -v b="$t" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b }')"
done
echo "target: dicom / tcp <= 1.10; load at the end: $(load)"
exit $status
