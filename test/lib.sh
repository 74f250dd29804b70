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
