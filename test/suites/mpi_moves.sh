#!/bin/bash
# test/suites/mpi_moves.sh -- the MPI test programs with ranks moved in the
# middle, faults during and after moves, and endings after moves (issue 9).
#
# 1. Each self-checking program of test/mpi/ (p2p_sizes, nonblocking,
#    anysource, probe, datatypes, collectives, thread_multiple), np 6 on 3
#    virtual nodes over --mca btl dicom,self, launched by odls migr, while
#    4 moves are made: a rank away from home, another, the first back home,
#    two at once.  The program repeats its body until the moves are done
#    (MIGR_TEST_UNTIL), so every move falls in the middle of its traffic
#    whatever the load; its own verification must pass, mpirun exit 0.
# 2. Faults, np 4 on n1 and n2 with n3 as the destination (storm: every
#    message checked for contents, count and order): n3's migrd killed
#    mid-move, n3's link cut mid-move, n3 refusing (the rank's pid taken
#    there) -- each move fails and the rank runs on at home -- n3's
#    migrd killed after a rank passed through it, and the migrd of the
#    ranks' home restarted while they are away.  The job completes, OK.
# 3. Endings after moves, compared with the same job without migr (status
#    and messages): a moved rank calls MPI_Abort, a moved rank dies of
#    SIGSEGV, SIGINT to mpirun while ranks are away.
# Every case ends with nothing left on any node: no process, migrd record,
# mailbox or PMIx namespace (session directory) of the job.  Runs on its
# own virtual cluster (MIGR_VCLUSTER_ID=10), torn down at exit.
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-10}
export MIGR_TEST_HOOKS=1 # the faults stall a move half-way (migrctl migrate --inject stall)
V=$VCLUSTER
MPI_BIN=$BUILD/test/mpi
PROG=$BUILD/test/odls/odls_job
PROGRAMS=(p2p_sizes nonblocking anysource probe datatypes collectives thread_multiple)

if [[ $(id -u) != 0 ]]; then
    skip mpi_moves "needs root (namespaces, ptrace, clone3 set_tid)"
    exit 0
fi
for p in "${PROGRAMS[@]/#/$MPI_BIN/}" "$MPI_BIN/storm" "$PROG"; do
    [[ -x $p ]] || { fail mpi_moves "$p is not built (make)"; exit 0; }
done
# The nodes' migrds and ranks use their own node's socket.
unset MIGR_SOCKET
if ! vcluster_up 3; then
    fail vcluster "cannot bring up 3 nodes (see above)"
    exit 0
fi
read -r -a SPREAD <<<"$("$V" mpirun-args)"
source "$TOP/test/mpi_lib.sh"
MPI_LEFT_PATTERN="odls_job|migrctl run|orted|storm|$(IFS='|'; echo "${PROGRAMS[*]}")"
DICOM=(--mca pml ob1 --mca btl dicom,self --mca mpi_yield_when_idle 1 --bind-to none)
# the programs' watchdog, a little under the cases' timeouts
WATCHDOG=(-x MIGR_TEST_WATCHDOG=80)

# ready: every node's migrd answers (one killed by a failed case is
# restarted), the nodes' pid counters are apart.
ready() {
    local n
    for n in n1 n2 n3; do
        "$V" exec $n "$MIGRCTL_BIN" status >/dev/null 2>&1 || "$V" migrd-restart $n >/dev/null ||
            { echo "$n's migrd does not answer and does not restart"; return 1; }
    done
    vc_pids_apart || { echo "cannot set the nodes' pid counters"; return 1; }
}

# guarded CASE-FN ARGS...: the case; when it fails, its job is ended
# (SIGTERM to mpirun, which ends the ranks; SIGKILL after 20 s) and its
# remains are waited for, so that the next case starts on clean nodes.
guarded() {
    MPIRUN=
    "$@" && return 0
    local rc=$? i
    if [[ -n $MPIRUN ]] && kill -TERM "$MPIRUN" 2>/dev/null; then
        for ((i = 0; i < 200; i++)); do
            kill -0 "$MPIRUN" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$MPIRUN" 2>/dev/null
    fi
    ready >/dev/null 2>&1
    nothing_left >/dev/null 2>&1
    return $rc
}

# finish NAME PROG: let job NAME (MIGR_TEST_UNTIL=$SCRATCH/NAME.stop) end its
# round; it must end 0 with the program's OK line and leave nothing behind.
finish() {
    local rc
    touch "$SCRATCH/$1.stop"
    rc=$(await "$1" 60)
    [[ $rc == 0 ]] && grep -q "^$2: OK" "$SCRATCH/$1.out" ||
        { echo "status $rc: $(grep -v -e '^ ' -e '^--' -e '^$' "$SCRATCH/$1.out" | head -n 4 | tr '\n' '|')"; return 1; }
    nothing_left "$MJOB" || return 1
    grep -h "rounds until" "$SCRATCH/$1.out"
}

# at RANK NODE STATE: the rank's home says it is there in that state.
at() {
    local where
    where=$(mrank_at "$1")
    [[ $where == "$2 $3" ]] || { echo "rank $1: '$where' at its home, not '$2 $3'"; return 1; }
}

# --- 1. every program, 4 moves in the middle: rank 0 n1 -> n2 (away), rank
# 4 n2 -> n3 (another), rank 0 back home, ranks 1 (n2 -> n3) and 5 (n3 ->
# n1) at once; then one more round of traffic with them away
case_moves() {
    local prog=$1 a b
    ready || return 1
    mpi_job "$prog" "${DICOM[@]}" "${MIGR_MPI[@]}" --map-by node -np 6 "${WATCHDOG[@]}" \
        -x MIGR_TEST_UNTIL="$SCRATCH/$prog.stop" -- "$MPI_BIN/$prog"
    mjob_ready "$prog" 2 2 2 || return 1
    sleep 0.5
    mmove 0 n2 || return 1
    sleep 0.5
    mmove 4 n3 || return 1
    sleep 0.5
    mmove 0 n1 || return 1
    sleep 0.5
    mmove 1 n3 & a=$!
    mmove 5 n1 & b=$!
    wait $a || return 1
    wait $b || return 1
    at 0 n1 running && at 4 n3 away && at 1 n3 away && at 5 n1 away || return 1
    [[ ! -s $SCRATCH/$prog.rc ]] || { echo "the job ended during the moves: $(tail -n 3 "$SCRATCH/$prog.out" | tr '\n' '|')"; return 1; }
    sleep 1
    finish "$prog" "$prog"
}
for prog in "${PROGRAMS[@]}"; do
    run_case "mpi-moves-$prog-np6" 90 guarded case_moves "$prog"
done

# --- 2. faults.  storm, np 4: ranks 0 and 2 at home on n1, 1 and 3 on n2;
# n3 runs nothing of the job and is where the moves go.
MPI_NODES=(n1 n2 n3)
# fault_job NAME: the storm job, its ranks ready; rank 0's pid in RANK0_PID.
fault_job() {
    ready || return 1
    mpi_job "$1" "${DICOM[@]}" "${MIGR_MPI[@]}" --host n1:2,n2:2 --map-by node -np 4 "${WATCHDOG[@]}" \
        -x MIGR_TEST_UNTIL="$SCRATCH/$1.stop" -- "$MPI_BIN/storm" 7070 3000
    mjob_ready "$1" 2 2 0 || return 1
    RANK0_PID=$("$V" exec n1 "$MIGRCTL_BIN" ps |
        awk -v j="$MJOB" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } $c["JOB"] == j && $c["RANK"] == 0 { print $c["PID"] }')
    [[ -n $RANK0_PID ]] || { echo "no pid of rank 0 in n1's ps"; return 1; }
    sleep 0.5
}

# stalled_move RANK NODE: the move, stalled half-way through the image for
# 3 s by a test hook, in the background (STALLED); its answer in
# $SCRATCH/stalled.move.
stalled_move() {
    mmove "$1" "$2" --inject stall >"$SCRATCH/stalled.move" 2>&1 &
    STALLED=$!
}

case_dest_killed() {
    fault_job fk || return 1
    stalled_move 0 n3
    sleep 1.2
    vc_kill_migrd n3 || return 1
    if wait "$STALLED"; then echo "the move succeeded although the destination died"; return 1; fi
    at 0 n1 running || return 1
    sleep 1
    "$V" migrd-restart n3 >/dev/null || { echo "cannot restart n3's migrd"; return 1; }
    finish fk storm || return 1
    cat "$SCRATCH/stalled.move"
}
run_case mpi-fault-destination-killed-mid-move 90 guarded case_dest_killed

CUT_LINK=$(vc_link n3)
at_exit "ip link set '$CUT_LINK' up"
case_link_cut() {
    ip link show "$CUT_LINK" >/dev/null 2>&1 || { echo "no link $CUT_LINK (see ip link)"; return 1; }
    fault_job lc || return 1
    stalled_move 0 n3
    sleep 1.2
    ip link set "$CUT_LINK" down
    if wait "$STALLED"; then ip link set "$CUT_LINK" up; echo "the move succeeded over a cut link"; return 1; fi
    ip link set "$CUT_LINK" up
    at 0 n1 running || return 1
    sleep 1
    finish lc storm || return 1
    cat "$SCRATCH/stalled.move"
}
run_case mpi-fault-link-cut-mid-move 90 guarded case_link_cut

case_pid_taken() {
    fault_job pt || return 1
    vc_take_pid n3 "$RANK0_PID" 30 || { echo "cannot take pid $RANK0_PID on n3"; return 1; }
    if mmove 0 n3 >"$SCRATCH/taken.move" 2>&1; then
        "$V" exec n3 kill "$RANK0_PID"; echo "moved although pid $RANK0_PID is taken on n3"; return 1
    fi
    # the holder's sleep has the pid in n3; its shell ends with it
    "$V" exec n3 kill "$RANK0_PID"
    wait "$HOLD_PID" 2>/dev/null
    grep -q "pid $RANK0_PID is taken on n3" "$SCRATCH/taken.move" || { echo "reason: $(cat "$SCRATCH/taken.move")"; return 1; }
    at 0 n1 running || return 1
    sleep 1
    finish pt storm || return 1
    cat "$SCRATCH/taken.move"
}
run_case mpi-fault-destination-refuses-pid-taken 90 guarded case_pid_taken

# rank 0 goes n1 -> n3 -> n2 (onto its peers' node); then n3's migrd, which
# kept its exiled mailbox, is killed: the job must not care
case_left_node_killed() {
    fault_job lk || return 1
    mmove 0 n3 || return 1
    sleep 0.5
    mmove 0 n2 || return 1
    sleep 1
    vc_kill_migrd n3 || return 1
    sleep 1.5
    at 0 n2 away || return 1
    "$V" migrd-restart n3 >/dev/null || { echo "cannot restart n3's migrd"; return 1; }
    finish lk storm
}
run_case mpi-fault-left-node-migrd-killed-after 90 guarded case_left_node_killed

# ranks 0 and 2 (at home on n1) both go to n3; then the migrd of their home
# is restarted: their deputies hold what the home held and give it to the
# next migrd, which takes the ranks back; the job completes, OK
case_home_restarted() {
    fault_job hr || return 1
    mmove 0 n3 || return 1
    mmove 2 n3 || return 1
    sleep 0.5
    "$V" migrd-restart n1 >/dev/null || { echo "cannot restart n1's migrd"; return 1; }
    local i
    for ((i = 0; i < 50; i++)); do
        at 0 n3 away >/dev/null && at 2 n3 away >/dev/null && break
        sleep 0.2
    done
    at 0 n3 away && at 2 n3 away || return 1
    finish hr storm
}
run_case mpi-fault-home-migrd-restarted-ranks-away 90 guarded case_home_restarted

# --- 3. endings after moves, as without migr.  odls_job np 6 over dicom
# (ranks r at home on n((r mod 3)+1)) waits for its GO file after its first
# line; the ranks are moved before it appears.
# ending NAME PATTERN MOVES -- PROG-ARGS...: the job without migr (GO at
# once), then with migr and the MOVES ("RANK:NODE ...") before GO; status and
# messages must be the same, the output with migr match PATTERN (grep -E),
# nothing left.  A MODE of hang gets SIGINT instead of GO (mpirun then says
# nothing, with or without migr: an empty PATTERN).
ending() {
    local name=$1 pat=$2 moves=$3 m mode
    shift 4
    mode=$1
    ready || return 1
    mpi_job "${name}0" "${DICOM[@]}" --map-by node -np 6 -- "$PROG" "$@" - "$SCRATCH/${name}0.go"
    started "${name}0" 6 || return 1
    if [[ $mode == hang ]]; then kill -INT "$MPIRUN"; else touch "$SCRATCH/${name}0.go"; fi
    [[ $(await "${name}0" 60) != timeout ]] || { echo "the job without migr did not end"; return 1; }
    mpi_job "${name}1" "${DICOM[@]}" "${MIGR_MPI[@]}" --map-by node -np 6 -- "$PROG" "$@" - "$SCRATCH/${name}1.go"
    started "${name}1" 6 && mjob_ready "${name}1" 2 2 2 || return 1
    for m in $moves; do
        mmove "${m%:*}" "${m#*:}" || return 1
    done
    for m in $moves; do
        at "${m%:*}" "${m#*:}" away || return 1
    done
    if [[ $mode == hang ]]; then kill -INT "$MPIRUN"; else touch "$SCRATCH/${name}1.go"; fi
    same_ending "${name}0" "${name}1" || return 1
    [[ -z $pat ]] || grep -Eq "$pat" "$SCRATCH/${name}1.out" || { echo "no '$pat' in: $(tr '\n' '|' <"$SCRATCH/${name}1.out")"; return 1; }
    nothing_left "$MJOB"
}
run_case mpi-ending-abort-after-move 90 guarded ending abort 'MPI_ABORT was invoked on rank 3' "3:n2 0:n3" -- abort 3
run_case mpi-ending-sigsegv-after-move 90 guarded ending segv 'rank 2 with PID [0-9]+ on node n3 exited on signal 11' \
    "2:n1 4:n3" -- segv 2
run_case mpi-ending-sigint-ranks-away 90 guarded ending int '' \
    "0:n2 1:n3 5:n1" -- hang
exit 0
