#!/bin/bash
# test/suites/odls.sh -- MPI jobs launched by `--mca odls migr` (issue 9):
# every rank through its home deputy (migrctl run --job --rank), registered
# with its node's migrd.  np 4 over 3 virtual nodes over dicom and over
# vader/tcp, mpirun's own node launching its ranks, `migrctl ps` listing
# each rank with its job and rank, `migrctl migrate JOB RANK` resolving to
# the rank's pid, and the endings of a job as without migr: MPI_Abort, a
# rank killed by SIGSEGV, SIGUSR1 forwarded once, SIGINT to mpirun,
# `mpirun --timeout`, a deputy killed by SIGKILL; nothing left behind
# (process, deputy, mailbox or migrd record).  Last: no migrd on a node,
# a one-line refusal and no rank started.
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID=3), torn down at exit.
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-3}
V=$VCLUSTER
C=$MIGRCTL_BIN
PROG=$BUILD/test/odls/odls_job
STATE=${MIGR_VCLUSTER_STATE:-/run/migr-vcluster$MIGR_VCLUSTER_ID}

if [[ $(id -u) != 0 ]]; then
    skip odls "needs root (namespaces)"
    exit 0
fi
if [[ ! -x $PROG ]]; then
    fail odls "$PROG is not built (make)"
    exit 0
fi
# The nodes' migrds and ranks use their own node's socket.
unset MIGR_SOCKET
if ! vcluster_up 3; then
    fail vcluster "cannot bring up 3 nodes (see above)"
    exit 0
fi
read -r -a SPREAD <<<"$("$V" mpirun-args)"
# shellcheck source=../mpi_lib.sh
source "$TOP/test/mpi_lib.sh"
MIGR=("${MIGR_MPI[@]}")
DICOM=(--mca pml ob1 --mca btl dicom,self)
TCP=(--mca pml ob1 --mca btl self,tcp)

# job NAME [MPIRUN-OPTION...] -- PROG-ARGS...: odls_job np 4, one rank per
# node in turn, in the background (mpi_job of test/mpi_lib.sh).
job() {
    local name=$1 opts=()
    shift
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    mpi_job "$name" --map-by node "${opts[@]}" -np 4 -- "$PROG" "$@"
}

# the pid a rank printed, and its job as Open MPI prints it
rank_pid() { awk -v r="$2" '$1 == "rank" && $2 == r { print $8 }' "$SCRATCH/$1.out"; }
rank_job() {
    local j
    j=$(awk '$1 == "rank" { print $6; exit }' "$SCRATCH/$1.out")
    echo "[$((j >> 16)),$((j & 65535))]"
}

# --- np 4 over 3 nodes over dicom; ps lists every rank with job and rank
case_dicom() {
    job dicom "${MIGR[@]}" "${DICOM[@]}" -- sleep 2
    started dicom 4 || return 1
    local job r pid n row found
    job=$(rank_job dicom)
    for ((r = 0; r < 4; r++)); do
        pid=$(rank_pid dicom $r)
        n=${MPI_NODES[r % 3]}
        row=$("$V" exec "$n" "$C" ps | ps_fields "$pid" JOB RANK HOME NODE STATE)
        [[ $row == "$job $r $n $n running" ]] ||
            { echo "rank $r (pid $pid) on $n: ps says '$row', not '$job $r $n $n running'"; return 1; }
        found+="$r@$n "
    done
    rc=$(await dicom 30)
    [[ $rc == 0 ]] || { echo "status $rc: $(tail -n 3 "$SCRATCH/dicom.out" | tr '\n' '|')"; return 1; }
    grep -qx 'odls_job ok' "$SCRATCH/dicom.out" || { echo "wrong result"; return 1; }
    grep -qF "pid $(rank_pid dicom 1) (job $job rank 1) (odls_job, uid 0) started here" "$STATE/n2/migrd.log" ||
        { echo "n2's migrd did not log rank 1 with its job"; return 1; }
    nothing_left || return 1
    echo "ps: $found($job)"
}
run_case "odls-dicom-np4-3nodes-ps" 60 case_dicom

# --- vader and tcp (two ranks share a node: vader between them)
case_vader_tcp() {
    rm -f "$SCRATCH/vt.rc"
    mpirun "${SPREAD[@]}" "${MIGR[@]}" --mca pml ob1 --mca btl vader,tcp,self -np 4 "$PROG" ok \
        </dev/null >"$SCRATCH/vt.out" 2>&1 || { echo "status $?: $(tail -n 3 "$SCRATCH/vt.out" | tr '\n' '|')"; return 1; }
    grep -qx 'odls_job ok' "$SCRATCH/vt.out" || { echo "wrong result"; return 1; }
    nothing_left
}
run_case "odls-vader-tcp-np4" 60 case_vader_tcp

# --- mpirun inside a node: the HNP launches its own ranks through deputies
case_hnp() {
    "$V" exec n1 mpirun --allow-run-as-root "${MIGR[@]}" "${DICOM[@]}" -np 2 "$PROG" ok \
        </dev/null >"$SCRATCH/hnp.out" 2>&1 || { echo "status $?: $(tail -n 3 "$SCRATCH/hnp.out" | tr '\n' '|')"; return 1; }
    grep -qx 'odls_job ok' "$SCRATCH/hnp.out" || { echo "wrong result"; return 1; }
    nothing_left
}
run_case "odls-hnp-local-ranks" 60 case_hnp

# --- migrctl migrate JOB RANK: resolved at the home to the rank's pid
case_migrate_rank() {
    job mr "${MIGR[@]}" "${TCP[@]}" -- sleep 3
    started mr 4 || return 1
    local job pid plain out
    job=$(rank_job mr) pid=$(rank_pid mr 1)
    plain=$(awk '$1 == "rank" { print $6; exit }' "$SCRATCH/mr.out")
    # moving rank 1 to where it runs names its pid: the resolution worked
    out=$("$V" exec n2 "$C" migrate "$job" 1 --to n2 2>&1) && { echo "moved to itself: $out"; return 1; }
    [[ $out == *"pid $pid already runs on n2"* ]] || { echo "$job 1: '$out'"; return 1; }
    out=$("$V" exec n2 "$C" migrate "$plain" 1 --to n2 2>&1)
    [[ $out == *"pid $pid already runs on n2"* ]] || { echo "$plain 1: '$out'"; return 1; }
    out=$("$V" exec n2 "$C" migrate "$job" 0 --to n1 2>&1)
    [[ $out == *"job $job rank 0 has no home on n2"* && $(wc -l <<<"$out") == 1 ]] ||
        { echo "rank 0 asked at n2: '$out'"; return 1; }
    out=$("$V" exec n1 "$C" migrate "[1,x]" 0 --to n2 2>&1)
    [[ $? == 2 && $out == *"'[1,x]' is not a job id"* && $(wc -l <<<"$out") == 1 ]] ||
        { echo "malformed job id: '$out'"; return 1; }
    [[ $(await mr 30) == 0 ]] || { echo "the job failed: $(tail -n 3 "$SCRATCH/mr.out" | tr '\n' '|')"; return 1; }
    nothing_left
}
run_case "odls-migrate-job-rank-resolves" 60 case_migrate_rank

# --- a rank of a job over tcp moved mid-run (its stdin is /dev/null, its
# PMIx connection and stdout are forwarded by its home): the job completes,
# the move is logged with job and rank.  Moved back home and away again at
# once, each asked as soon as the last one returned (the home then waits
# for the new location's connection).  n1's pids are pushed past n2's
# first, so that the rank's pid is free at the destination.
case_move_tcp_rank() {
    "$V" exec n1 sh -c 'i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i + 1)); done'
    job mv "${MIGR[@]}" "${TCP[@]}" -- sleep 4
    started mv 4 || return 1
    local job pid out to
    job=$(rank_job mv) pid=$(rank_pid mv 3)
    for to in n2 n1 n2; do
        out=$("$V" exec n1 "$C" migrate "$job" 3 --to $to 2>&1) || { echo "move to $to: $out"; return 1; }
    done
    [[ $("$V" exec n1 "$C" ps | ps_fields "$pid" JOB RANK NODE STATE) == "$job 3 n2 away" ]] ||
        { echo "ps at n1: $("$V" exec n1 "$C" ps | tr '\n' '|')"; return 1; }
    grep -qF "move pid $pid (job $job rank 3) n1 -> n2 for uid 0: ok" "$STATE/n1/migrd.log" || { echo "no move line in n1's log"; return 1; }
    [[ $(await mv 30) == 0 ]] || { echo "the job failed: $(tail -n 3 "$SCRATCH/mv.out" | tr '\n' '|')"; return 1; }
    grep -qx 'odls_job ok' "$SCRATCH/mv.out" && grep -qx 'slept 3' "$SCRATCH/mv.out" ||
        { echo "output: $(tr '\n' '|' <"$SCRATCH/mv.out")"; return 1; }
    nothing_left || return 1
    echo "$out"
}
run_case "odls-move-tcp-rank-completes" 60 case_move_tcp_rank

# --- odls_migr_migratable=false: launched with --no-migrate, listed so by
# ps, and migrd refuses to move the rank
case_not_migratable() {
    job nomig "${MIGR[@]}" --mca odls_migr_migratable false "${TCP[@]}" -- sleep 2
    started nomig 4 || return 1
    local job out
    job=$(rank_job nomig)
    "$V" exec n2 "$C" ps | grep -q "odls_job (no-migrate)$" || { echo "ps: $("$V" exec n2 "$C" ps | tr '\n' '|')"; return 1; }
    out=$("$V" exec n2 "$C" migrate "$job" 1 --to n1 2>&1) && { echo "moved: $out"; return 1; }
    [[ $out == *"was started with --no-migrate"* ]] || { echo "refusal: '$out'"; return 1; }
    [[ $(await nomig 30) == 0 ]] || { echo "the job failed: $(tail -n 3 "$SCRATCH/nomig.out" | tr '\n' '|')"; return 1; }
    nothing_left
}
run_case "odls-not-migratable" 60 case_not_migratable

# --- MPI_Abort(..., 3), a rank killed by SIGSEGV, `mpirun --timeout 5` on
# a hanging job: mpirun's status and messages as without migr.
# case_ending NAME PATTERN [MPIRUN-OPTION...] -- PROG-ARGS...: run without
# and with odls migr; the output with migr must match PATTERN (grep -E).
case_ending() {
    local name=$1 pat=$2 opts=()
    shift 2
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    job "${name}0" "${opts[@]}" "$@"
    await "${name}0" 60 >/dev/null
    job "${name}1" "${MIGR[@]}" "${opts[@]}" "$@"
    same_ending "${name}0" "${name}1" || return 1
    grep -Eq "$pat" "$SCRATCH/${name}1.out" || { echo "no '$pat' in: $(tr '\n' '|' <"$SCRATCH/${name}1.out")"; return 1; }
    nothing_left
}
run_case "odls-mpi-abort-as-without-migr" 90 case_ending abort 'MPI_ABORT was invoked on rank 3' "${TCP[@]}" -- abort 3
run_case "odls-sigsegv-as-without-migr" 90 case_ending segv 'rank 2 with PID [0-9]+ on node n3 exited on signal 11' \
    "${TCP[@]}" -- segv 2
run_case "odls-mpirun-timeout" 60 case_ending to 'time limit for job execution has been reached' \
    --timeout 5 "${TCP[@]}" -- hang

# --- a signal mpirun forwards reaches each rank once (not also through the
# deputy's process group)
case_usr1() {
    job usr1 "${MIGR[@]}" "${TCP[@]}" -- usr1
    started usr1 4 || return 1
    kill -USR1 "$MPIRUN"
    [[ $(await usr1 40) == 0 ]] || { echo "status: $(tail -n 3 "$SCRATCH/usr1.out" | tr '\n' '|')"; return 1; }
    [[ $(grep -c '^usr1 [0-3] count 1$' "$SCRATCH/usr1.out") == 4 ]] ||
        { echo "counts: $(grep '^usr1' "$SCRATCH/usr1.out" | tr '\n' '|')"; return 1; }
}
run_case "odls-sigusr1-forwarded-once" 60 case_usr1

# --- SIGINT to mpirun ends the job; nothing left (dicom: mailboxes too)
case_sigint() {
    job int "${MIGR[@]}" "${DICOM[@]}" -- hang
    started int 4 || return 1
    kill -INT "$MPIRUN"
    local rc
    rc=$(await int 30)
    [[ $rc != timeout && $rc != 0 ]] || { echo "status $rc after SIGINT"; return 1; }
    nothing_left || return 1
    echo "status $rc"
}
run_case "odls-sigint-cleans-up" 60 case_sigint

# --- a deputy killed by SIGKILL: its migrd kills the rank; the job ends
case_deputy_killed() {
    job dk "${MIGR[@]}" "${TCP[@]}" -- hang
    started dk 4 || return 1
    local pid dep rc
    pid=$(rank_pid dk 1)
    dep=$("$V" exec n2 awk '{ print $4 }' "/proc/$pid/stat")
    [[ -n $dep ]] && "$V" exec n2 kill -KILL "$dep" || { echo "no deputy of pid $pid on n2"; return 1; }
    rc=$(await dk 30)
    [[ $rc != timeout && $rc != 0 ]] || { echo "status $rc"; return 1; }
    grep -q 'rank 1 with PID [0-9]* on node n2 exited on signal 9' "$SCRATCH/dk.out" ||
        { echo "message: $(grep -i signal "$SCRATCH/dk.out")"; return 1; }
    nothing_left
}
run_case "odls-deputy-killed" 60 case_deputy_killed

# --- no migrd on n3: one line naming the socket and the fix, no rank
# started (mpirun inside n3), non-zero status; across the nodes too.
case_no_migrd() {
    local dpid out rc
    dpid=$(vc_migrd_pid n3)
    [[ -n $dpid ]] && "$V" exec n3 kill -TERM "$dpid" || { echo "no migrd pid for n3"; return 1; }
    mkdir -p "$SCRATCH/started"
    "$V" exec n3 mpirun --allow-run-as-root "${MIGR[@]}" "${TCP[@]}" -np 2 "$PROG" ok "$SCRATCH/started" \
        </dev/null >"$SCRATCH/nm.out" 2>&1 && { echo "mpirun succeeded without migrd"; return 1; }
    out=$(grep 'no migrd answers' "$SCRATCH/nm.out")
    [[ $(wc -l <<<"$out") == 1 && $out == *"on n3: no migrd answers on /run/migr/migrd.sock"*"start migrd as root"* ]] ||
        { echo "refusal: $(tr '\n' '|' <"$SCRATCH/nm.out")"; return 1; }
    [[ -z $(ls "$SCRATCH/started") ]] || { echo "ranks started: $(ls "$SCRATCH/started")"; return 1; }
    job nm3 "${MIGR[@]}" "${TCP[@]}" -- ok
    rc=$(await nm3 30)
    [[ $rc != timeout && $rc != 0 ]] || { echo "across the nodes: status $rc"; return 1; }
    grep -q 'on n3: no migrd answers' "$SCRATCH/nm3.out" || { echo "across the nodes: $(tr '\n' '|' <"$SCRATCH/nm3.out")"; return 1; }
    echo "$out"
}
run_case "odls-no-migrd-refused" 60 case_no_migrd
exit 0
