#!/usr/bin/env bash
# The dicom BTL when things go wrong: no migrd, migrd killed mid-job.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
DEMO=$BUILD/examples/ring_demo

# Open MPI reports the missing path either through bml ("unable to reach
# each other") or through the PML ("pml-add-procs-fail"); on some aborts
# 4.1.4 loses the help text altogether (its show_help bug), so a run that
# printed no help at all is tried once more.
no_path_job() {
    local try
    for try in 1 2; do
        env MIGR_SOCKET="$SCRATCH/none.sock" mpirun "${mpirun_dicom[@]}" -np 2 "$DEMO" 5 >"$SCRATCH/nopath.out" 2>&1 &&
            { cat "$SCRATCH/nopath.out"; return 0; }
        grep -q -- '------' "$SCRATCH/nopath.out" && break
    done
    cat "$SCRATCH/nopath.out"
    return 1
}
expect_fail "no migrd: dicom disqualifies itself and Open MPI reports no path" 90 \
    "unable to reach each other|BTLs attempted|help-mca-bml-r2.txt / unreachable proc|pml-add-procs-fail|communication plugins were considered" \
    no_path_job
run_case "no migrd: the reason is one line naming the socket" 60 \
    sh -c "MIGR_SOCKET=$SCRATCH/none.sock mpirun ${mpirun_dicom[*]} -np 2 '$DEMO' 5 2>&1 | grep -q 'dicom.*$SCRATCH/none.sock'"

export MIGR_SOCKET=$SCRATCH/migrd.sock
start_migrd "$MIGR_SOCKET" "$SCRATCH/migrd.log" || { fail "migrd starts" "no socket"; exit 1; }
run_case "with migrd: the demo job runs over dicom,self and verifies" 120 \
    sh -c "mpirun ${mpirun_dicom[*]} -np 2 '$DEMO' 50 | grep -q VERIFIED"

killed_mid_job() {
    mpirun "${mpirun_dicom[@]}" -np 2 "$DEMO" 1000000 >"$SCRATCH/job.out" 2>&1 &
    local job=$! i
    for ((i = 0; i < 100; i++)); do
        grep -q 'registered job' "$SCRATCH/migrd.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1
    kill -9 "$MIGRD_PID"
    # The job must end by itself, with an error, in bounded time.
    for ((i = 0; i < 300; i++)); do
        kill -0 $job 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 $job 2>/dev/null; then
        kill -9 $job
        echo "job still running 30 s after migrd was killed"
        return 1
    fi
    wait $job && { echo "job exited 0"; return 1; }
    grep -qi 'migrd' "$SCRATCH/job.out" || { echo "no message naming migrd: $(tail -n 5 "$SCRATCH/job.out")"; return 1; }
}
run_case "migrd killed mid-job: the job ends with an error naming migrd within 30 s" 60 killed_mid_job
