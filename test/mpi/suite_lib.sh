# shellcheck shell=bash
# test/mpi/suite_lib.sh -- what the MPI suites (test/suites/mpi_*.sh) share:
# the list of test programs, how one is run under mpirun with a time limit,
# and how a failure is turned into a one-line reason.  Source it after
# test/lib.sh; do not run it.
#
# Environment:
#   MIGR_TEST_BTL           BTL list under test (default dicom,self)
#   MIGR_TEST_CASE_TIMEOUT  seconds per case (default 120)
#   MIGR_TEST_SEED          seed of the storm program (default: time)
#   MIGR_TEST_PROGRAMS      programs to run (default: all, blank-separated)
#   MIGR_TEST_MPIRUN_ARGS   extra mpirun options (word-split)

# shellcheck disable=SC2034 # used by the suites
MPI_PROGRAMS=(p2p_sizes nonblocking anysource probe datatypes collectives thread_multiple storm)
if [[ -n ${MIGR_TEST_PROGRAMS:-} ]]; then
    # shellcheck disable=SC2034
    read -r -a MPI_PROGRAMS <<<"$MIGR_TEST_PROGRAMS"
fi
MPI_BIN_DIR=$BUILD/test/mpi
MPI_BTL=${MIGR_TEST_BTL:-dicom,self}
MPI_CASE_TIMEOUT=${MIGR_TEST_CASE_TIMEOUT:-120}
MPI_SEED=${MIGR_TEST_SEED:-$(date +%s)}
read -r -a MPI_EXTRA_ARGS <<<"${MIGR_TEST_MPIRUN_ARGS:-}"
# The programs' own watchdog fires a little before the suite's timeout, so a
# hang is reported by the program with its rank rather than just killed.
export MIGR_TEST_WATCHDOG=${MIGR_TEST_WATCHDOG:-$((MPI_CASE_TIMEOUT > 30 ? MPI_CASE_TIMEOUT - 15 : MPI_CASE_TIMEOUT))}

# mpi_btl_uses_dicom: is the dicom BTL part of the list under test?
mpi_btl_uses_dicom() {
    [[ ,$MPI_BTL, == *,dicom,* ]]
}

# mpi_base_args NP: options every MPI case gets (pml, btl, root, yielding
# when there are more ranks than cores on this machine).
mpi_base_args() {
    local np=$1
    MPI_ARGS=(--mca pml ob1 --mca btl "$MPI_BTL")
    [[ $(id -u) == 0 ]] && MPI_ARGS+=(--allow-run-as-root)
    if ((np > $(nproc))); then
        MPI_ARGS+=(--mca mpi_yield_when_idle 1)
    fi
    # Remote ranks only see variables passed with -x.
    local v
    for v in MIGR_TEST_WATCHDOG MIGR_TEST_CORRUPT MIGR_TEST_KEEP_GOING MIGR_TEST_VERBOSE MIGR_TEST_LOOPS MIGR_TEST_UNTIL; do
        [[ -n ${!v:-} ]] && MPI_ARGS+=(-x "$v")
    done
    MPI_ARGS+=("${MPI_EXTRA_ARGS[@]}")
}

# mpi_prog_args PROG: command-line arguments of a test program.
mpi_prog_args() {
    case $1 in
    storm) echo "$MPI_SEED" ;;
    esac
}

# mpi_reason PROG OUT: the one-line reason of a failed run: the program's
# own line ("PROG: rank R: why") if there is one, else the first line of
# mpirun's that looks like an error, else the last lines.
mpi_reason() {
    local prog=$1 out=$2 line
    line=$(grep -m1 -E "^$prog: rank [0-9]+: " "$out")
    if [[ -n $line ]]; then
        echo "${line#"$prog: "}"
        return
    fi
    line=$(grep -m1 -iE 'error|unable|signal|abort|not found|no such|cannot|could not|refused' "$out" |
        grep -v '^-*$')
    if [[ -n $line ]]; then
        echo "$line"
        return
    fi
    tail -n 3 "$out" | tr '\n' '|'
}

# mpi_show_output OUT: the output of a failed case, indented, for the log.
mpi_show_output() {
    sed -n '1,40s/^/    | /p' "$1"
}

# mpi_case NAME PROG MPIRUN_ARGS...: run PROG under mpirun with the time
# limit; PASS if everything exits 0, else FAIL with the reason.
mpi_case() {
    local name=$1 prog=$2 bin out rc reason
    shift 2
    bin=$MPI_BIN_DIR/$prog
    if [[ ! -x $bin ]]; then
        fail "$name" "not built: $bin (run make)"
        return 1
    fi
    out=$SCRATCH/$prog.out
    # shellcheck disable=SC2046
    timeout -k 5 "$MPI_CASE_TIMEOUT" mpirun "$@" "$bin" $(mpi_prog_args "$prog") >"$out" 2>&1
    rc=$?
    if ((rc == 0)); then
        pass "$name"
        return 0
    fi
    if ((rc == 124 || rc == 137)); then
        reason="timed out after ${MPI_CASE_TIMEOUT}s"
        grep -qE "^$prog: rank [0-9]+: " "$out" && reason+="; $(mpi_reason "$prog" "$out")"
    else
        reason="exit $rc: $(mpi_reason "$prog" "$out")"
    fi
    [[ $prog == storm && $reason != *seed* ]] && reason+=" (seed $MPI_SEED)"
    fail "$name" "$reason"
    mpi_show_output "$out"
    return 1
}

# mpi_selftest_case NAME PROG MPIRUN_ARGS...: the program must FAIL with
# its own reason line when one received byte is flipped (MIGR_TEST_CORRUPT):
# a check that cannot fail is worthless.
mpi_selftest_case() {
    local name=$1 prog=$2 bin out rc
    shift 2
    bin=$MPI_BIN_DIR/$prog
    if [[ ! -x $bin ]]; then
        fail "$name" "not built: $bin"
        return 1
    fi
    out=$SCRATCH/$prog.selftest.out
    # shellcheck disable=SC2046
    MIGR_TEST_CORRUPT=1000 timeout -k 5 "$MPI_CASE_TIMEOUT" \
        mpirun "$@" -x MIGR_TEST_CORRUPT "$bin" $(mpi_prog_args "$prog") >"$out" 2>&1
    rc=$?
    if ((rc == 124 || rc == 137)); then
        fail "$name" "hung instead of failing within ${MPI_CASE_TIMEOUT}s"
    elif ((rc == 0)); then
        fail "$name" "a corrupted byte went unnoticed (exit 0)"
    elif ! grep -qE "^$prog: rank [0-9]+: " "$out"; then
        fail "$name" "exit $rc without the program's reason line: $(mpi_reason "$prog" "$out")"
        mpi_show_output "$out"
    else
        pass "$name"
    fi
}
