#!/usr/bin/env bash
# MPI test programs (test/mpi/) on this one node, np 2 and np 4, over
# --mca pml ob1 --mca btl ${MIGR_TEST_BTL:-dicom,self}; then a self-test:
# each program must fail when one received byte is corrupted.
# With dicom in the BTL list a private migrd is started for the job (unless
# MIGR_SOCKET names one already).  See test/mpi/suite_lib.sh for the knobs.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=../mpi/suite_lib.sh
source "$TOP/test/mpi/suite_lib.sh"

tag="($MPI_BTL)"
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
exit 0
