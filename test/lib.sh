# shellcheck shell=bash
# test/lib.sh -- what every suite shares: result lines, timeouts, a private
# migrd, mpirun options, clean-up.  Source it; do not run it.
#
# A suite prints one line per case, "PASS: name", "FAIL: name: why" or
# "SKIP: name: why"; test/run counts them.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${MIGR_BUILD:-$TOP}
MIGRD_BIN=$BUILD/migrd/migrd
MIGRCTL_BIN=$BUILD/tools/migrctl
VCLUSTER=$TOP/test/vcluster
export MIGRD=$MIGRD_BIN            # what test/vcluster starts on each node
# Use the components of this build tree, before any installed copy.
export OMPI_MCA_mca_base_component_path="$BUILD/components:SYS_DEFAULT"
if [[ $(id -u) == 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; }
skip() { echo "SKIP: $1: $2"; }

# A scratch directory removed when the suite exits.
SCRATCH=$(mktemp -d /tmp/migr-test.XXXXXX)
LIB_CLEANUPS=()
LIB_MAIN_PID=$BASHPID
# Only the suite's own shell cleans up: bash may run the EXIT trap in a
# subshell too (the with_timeout watchdog, a case in the background), and
# that would remove the scratch directory and tear the cluster down under
# the cases still running.
lib_cleanup() {
    [[ $BASHPID == "$LIB_MAIN_PID" ]] || return 0
    local i
    for ((i = ${#LIB_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${LIB_CLEANUPS[i]}" >/dev/null 2>&1; done
    # MIGR_TEST_KEEP=1 (a developer's aid): keep the scratch directory
    [[ -n ${MIGR_TEST_KEEP:-} ]] && echo "scratch kept in $SCRATCH" >&2 || rm -rf "$SCRATCH"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM
at_exit() { LIB_CLEANUPS+=("$1"); }

# with_timeout SECONDS CMD...: run CMD (a program or a shell function) in its
# own process group; after SECONDS the whole group gets SIGTERM, then
# SIGKILL.  Returns CMD's status, or 124 if it timed out.
with_timeout() {
    local secs=$1 pid wd rc mark=$SCRATCH/timed-out.$BASHPID
    shift
    rm -f "$mark"
    set -m
    "$@" &
    pid=$!
    set +m
    (
        # its sleeps end with it: a sleep left behind would keep the
        # descriptors of the suite (a lock held on the test run) open
        local nap
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        sleep "$secs" & nap=$!
        wait $nap
        touch "$mark"
        kill -TERM -- -"$pid" 2>/dev/null
        sleep 5 & nap=$!
        wait $nap
        kill -KILL -- -"$pid" 2>/dev/null
    ) &
    wd=$!
    wait "$pid"
    rc=$?
    kill -TERM "$wd" 2>/dev/null
    wait "$wd" 2>/dev/null
    if [[ -e $mark ]]; then
        rm -f "$mark"
        return 124
    fi
    return $rc
}

# run_case NAME SECONDS CMD...: PASS if CMD exits 0 within SECONDS, else
# FAIL with the reason and the last lines of its output.
run_case() {
    local name=$1 secs=$2 out rc
    shift 2
    # MIGR_TEST_ONLY=REGEX (a developer's aid): run only the matching cases
    [[ -z ${MIGR_TEST_ONLY:-} || $name =~ $MIGR_TEST_ONLY ]] || return 0
    out=$SCRATCH/case.out
    with_timeout "$secs" "$@" >"$out" 2>&1
    rc=$?
    if ((rc == 0)); then
        pass "$name"
    elif ((rc == 124)); then
        fail "$name" "timed out after ${secs}s; last output: $(tail -n 3 "$out" | tr '\n' '|')"
    else
        fail "$name" "exit $rc; last output: $(tail -n 3 "$out" | tr '\n' '|')"
    fi
    return $rc
}

# expect_fail NAME SECONDS PATTERN CMD...: PASS if CMD fails (non-zero) within
# SECONDS and its output matches the extended regex PATTERN.
expect_fail() {
    local name=$1 secs=$2 pat=$3 out rc
    shift 3
    out=$SCRATCH/case.out
    with_timeout "$secs" "$@" >"$out" 2>&1
    rc=$?
    if ((rc == 124)); then
        fail "$name" "hung: no answer within ${secs}s"
    elif ((rc == 0)); then
        fail "$name" "succeeded but should have failed"
    elif ! grep -Eq -- "$pat" "$out"; then
        fail "$name" "exit $rc without the expected message /$pat/; got: $(tail -n 3 "$out" | tr '\n' '|')"
    else
        pass "$name"
    fi
}

# start_migrd SOCKET LOG [ARGS...]: a private migrd, stopped at exit.
# Sets MIGRD_PID.  Returns non-zero if its socket does not appear in 5 s.
start_migrd() {
    local sock=$1 log=$2 i
    shift 2
    "$MIGRD_BIN" --foreground --socket "$sock" --log "$log" "$@" &
    MIGRD_PID=$!
    at_exit "kill $MIGRD_PID; wait $MIGRD_PID"
    for ((i = 0; i < 50; i++)); do
        [[ -S $sock ]] && return 0
        sleep 0.1
    done
    return 1
}

# The mpirun options for a job over DiCOM (add -np etc.).
mpirun_dicom=(--mca pml ob1 --mca btl dicom,self)
[[ $(id -u) == 0 ]] && mpirun_dicom+=(--allow-run-as-root)

# vcluster_up N [ARGS...]: a virtual cluster torn down at exit.
vcluster_up() {
    at_exit "'$VCLUSTER' down"
    # MIGR_TEST_KEEP=1: the nodes' migrd logs stay with the scratch directory
    [[ -n ${MIGR_TEST_KEEP:-} ]] &&
        at_exit "for d in /run/migr-vcluster$MIGR_VCLUSTER_ID/n*/; do cp \"\$d/migrd.log\" \"$SCRATCH/\$(basename \"\$d\").migrd.log\"; done"
    "$VCLUSTER" up "$@" >"$SCRATCH/vcluster.out" 2>&1 || {
        cat "$SCRATCH/vcluster.out" >&2
        return 1
    }
}

# ps_fields PID FIELD...: from `migrctl ps` output on stdin, the named
# columns (by the header: PID JOB RANK HOME NODE STATE MOVES) of the row of
# PID, blank-separated; nothing when PID is not listed.  Parse ps only
# through this, so that new columns do not break the suites.
ps_fields() {
    local pid=$1
    shift
    awk -v pid="$pid" -v want="$*" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; n = split(want, w, " "); next }
        $col["PID"] == pid { s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? " " : "") $col[w[i]]; print s; exit }'
}

# --- processes under `migrctl run` on a virtual cluster (VCLUSTER, MIGRCTL_BIN)

# start_run NAME ARGS...: `migrctl run -- ARGS` on ${RUN_NODE:-n1} in the
# background; sets RUN_PID (the stub's shell) and PID (the process);
# output in $SCRATCH/NAME.out and .err, its status in $SCRATCH/NAME.rc.
# With RUN_READY=PATTERN it also waits (10 s) for PATTERN in the output.
# Non-zero when the pid (or the pattern) does not come.
start_run() {
    local name=$1 i
    shift
    rm -f "$SCRATCH/$name.pid" "$SCRATCH/$name.rc"
    ( "$VCLUSTER" exec "${RUN_NODE:-n1}" "$MIGRCTL_BIN" run --pidfile "$SCRATCH/$name.pid" -- "$@" \
        >"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err"
      echo $? >"$SCRATCH/$name.rc" ) &
    RUN_PID=$!
    for ((i = 0; i < 100; i++)); do
        [[ -s $SCRATCH/$name.pid ]] && { [[ -z ${RUN_READY:-} ]] || grep -qs -- "$RUN_READY" "$SCRATCH/$name.out"; } &&
            break
        sleep 0.1
    done
    PID=$(cat "$SCRATCH/$name.pid" 2>/dev/null)
    [[ -n $PID ]] && { [[ -z ${RUN_READY:-} ]] || grep -qs -- "$RUN_READY" "$SCRATCH/$name.out"; }
}

# wait_run NAME SECONDS: wait for the run to end; prints its status (or
# "timeout").
wait_run() {
    local name=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -s $SCRATCH/$name.rc ]] && break
        sleep 0.1
    done
    cat "$SCRATCH/$name.rc" 2>/dev/null || echo timeout
}

# --- faults on a virtual cluster (test/vcluster; MIGR_VCLUSTER_ID as exported)

# vc_migrd_pid NODE: the pid, inside NODE, of NODE's migrd (nothing if none).
vc_migrd_pid() {
    "$VCLUSTER" status | awk -v n="$1" '$1 == n { for (i = 1; i <= NF; i++) if ($i == "(pid") print $(i + 1) }'
}

# vc_kill_migrd NODE: SIGKILL to NODE's migrd (a crash, nothing cleaned up).
vc_kill_migrd() {
    local dpid
    dpid=$(vc_migrd_pid "$1")
    [[ -n $dpid ]] || { echo "no migrd pid for $1"; return 1; }
    "$VCLUSTER" exec "$1" kill -KILL "$dpid"
}

# vc_link NODE: NODE's port on the cluster's bridge, in the root namespace
# (`ip link set $(vc_link NODE) down` cuts NODE off the others).
vc_link() { echo "migrvc${MIGR_VCLUSTER_ID:-0}-$1"; }

# vc_take_pid NODE PID SECONDS: a shell on NODE takes PID for SECONDS (so that
# a process with that pid cannot be restored there); HOLD_PID is the
# holder, to kill.  Non-zero if PID is not taken within 5 s.  The pid
# counter of NODE is set just below PID, so call vc_pids_apart after.
vc_take_pid() {
    local node=$1 pid=$2 i
    # The write runs in the shell itself (a builtin), the fork after it gets PID.
    "$VCLUSTER" exec "$node" sh -c "echo $((pid - 1)) >/proc/sys/kernel/ns_last_pid; sleep $3 & wait" &
    HOLD_PID=$!
    for ((i = 0; i < 50; i++)); do
        "$VCLUSTER" exec "$node" grep -qs -e sleep -e sh "/proc/$pid/cmdline" && return 0
        sleep 0.1
    done
    return 1
}

# vc_pids_apart [NODE...]: the pid counters of the nodes (default n1 n2 n3)
# set 1000 apart, past every pid used on any of them, so that processes of
# different nodes do not have the same pids (a move keeps the pid: the
# destination refuses a pid it has).  Starts low again near pid_max.
vc_pids_apart() {
    local nodes=("$@") n last max=0 base i=0 gap=1000 pid_max
    ((${#nodes[@]})) || nodes=(n1 n2 n3)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    for n in "${nodes[@]}"; do
        last=$("$VCLUSTER" exec "$n" cat /proc/sys/kernel/ns_last_pid) || return 1
        ((last > max)) && max=$last
    done
    base=$((max + gap))
    ((base + gap * (${#nodes[@]} + 1) < pid_max)) || base=$gap
    for n in "${nodes[@]}"; do
        "$VCLUSTER" exec "$n" sh -c "echo $((base + gap * i)) >/proc/sys/kernel/ns_last_pid" || return 1
        i=$((i + 1))
    done
}
