#!/usr/bin/env bash
# MPI test programs (test/mpi/) on this one node, np 2 and np 4, over
# --mca pml ob1 --mca btl ${MIGR_TEST_BTL:-dicom,self}; then a self-test:
# each program must fail when one received byte is corrupted.
# With dicom in the BTL list a private migrd is started for the job (unless
# MIGR_SOCKET names one already); then a job that did not ask for dicom
# must not use it, and must outlive a restart of that migrd.  See
# test/mpi/suite_lib.sh for the knobs.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=../mpi/suite_lib.sh
source "$TOP/test/mpi/suite_lib.sh"

tag="($MPI_BTL)"
own_migrd=
if mpi_btl_uses_dicom && [[ -z ${MIGR_SOCKET:-} ]]; then
    export MIGR_SOCKET=$SCRATCH/migrd.sock
    if [[ ! -x $MIGRD_BIN ]]; then
        fail "mpi_local: migrd for the dicom BTL" "not built: $MIGRD_BIN"
        exit 1
    fi
    if ! start_migrd "$MIGR_SOCKET" "$SCRATCH/migrd.log"; then
        fail "mpi_local: migrd for the dicom BTL" \
            "no control socket after 5 s: $(tail -n 3 "$SCRATCH/migrd.log" | tr '\n' '|')"
        exit 1
    fi
    own_migrd=1
fi

for np in 2 4; do
    mpi_base_args "$np"
    ((np > $(nproc))) && MPI_ARGS+=(--oversubscribe)
    for prog in "${MPI_PROGRAMS[@]}"; do
        mpi_case "mpi_local $prog np$np $tag" "$prog" "${MPI_ARGS[@]}" -np "$np"
    done
done

mpi_base_args 2
for prog in "${MPI_PROGRAMS[@]}"; do
    mpi_selftest_case "mpi_local selftest: $prog detects a corrupted byte $tag" "$prog" \
        "${MPI_ARGS[@]}" -np 2
done

# A job that names no BTL (vader and tcp by default) while migrd runs: the
# dicom BTL says it is not used, and a restart of migrd mid-run (which
# would end a job over dicom) leaves the job unharmed.  In the suite's own
# shell, not run_case's subshell: the restarted migrd is the suite's to stop.
DEMO=$BUILD/examples/ring_demo
unselected_job_survives() {
    local out=$SCRATCH/unselected.out job i rc said
    said() { grep -c 'this job did not select dicom' "$out"; }
    # a loaded machine may take minutes: the bound is for a hang only
    timeout -k 5 300 mpirun --mca pml ob1 --mca btl_dicom_verbose 1 -np 2 "$DEMO" 80000 >"$out" 2>&1 &
    job=$!
    for ((i = 0; i < 600 && $(said) < 2; i++)); do
        kill -0 $job 2>/dev/null || break
        sleep 0.05
    done
    (($(said) == 2)) || { echo "the ranks did not both say that dicom is not used:"; cat "$out"; kill $job; return 1; }
    kill -TERM "$MIGRD_PID" && wait "$MIGRD_PID"
    start_migrd "$MIGR_SOCKET" "$SCRATCH/migrd.log" || { echo "migrd did not start again"; kill $job; return 1; }
    kill -0 $job 2>/dev/null ||
        { cat "$out"; echo "the job ended while migrd was restarted (killed by it, or too short)"; return 1; }
    wait $job
    rc=$?
    cat "$out"
    ((rc == 0)) || { echo "mpirun exited $rc$( ((rc == 124)) && echo ' (timed out)')"; return 1; }
    grep -q 'result VERIFIED' "$out" || { echo "no 'result VERIFIED' in its output"; return 1; }
}
if [[ -n $own_migrd ]]; then
    name="mpi_local: a job without --mca btl does not use dicom and outlives a migrd restart"
    if unselected_job_survives >"$SCRATCH/case.out" 2>&1; then
        pass "$name"
    else
        fail "$name" "$(tail -n 3 "$SCRATCH/case.out" | tr '\n' '|')"
    fi
fi
exit 0
