#!/usr/bin/env bash
# MPI test programs (test/mpi/) across a virtual cluster of 3 nodes, np 6 (2
# ranks per node), over --mca pml ob1 --mca btl ${MIGR_TEST_BTL:-dicom,self}.
# The cluster is made here (test/vcluster up 3) and torn down at exit, also
# on failure or interrupt -- but only if this suite made it.
# See test/mpi/suite_lib.sh for the knobs.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# Its own virtual cluster, apart from one a developer may have up (id 0).
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-2}
# shellcheck source=../mpi/suite_lib.sh
source "$TOP/test/mpi/suite_lib.sh"

NODES=3
NP=6
tag="($MPI_BTL)"

skip_all() {
    local prog
    for prog in "${MPI_PROGRAMS[@]}"; do
        skip "mpi_vcluster $prog np$NP $tag" "$1"
    done
}

if [[ ! -x $VCLUSTER ]]; then
    skip_all "test/vcluster does not exist yet"
    exit 0
fi

# The nodes' migrds and ranks use their own node's socket, never the
# machine's (a MIGR_SOCKET inherited from the caller would clash).
unset MIGR_SOCKET
# dicom needs a migrd on every node; the other BTLs do not.
up_args=(up "$NODES")
mpi_btl_uses_dicom || up_args+=(--no-migrd)
if ! timeout -k 5 120 "$VCLUSTER" "${up_args[@]}" >"$SCRATCH/vcluster.out" 2>&1; then
    fail "mpi_vcluster: test/vcluster ${up_args[*]}" "$(grep -m1 . "$SCRATCH/vcluster.out")"
    mpi_show_output "$SCRATCH/vcluster.out"
    skip_all "no virtual cluster"
    exit 1
fi
at_exit "timeout -k 5 120 '$VCLUSTER' down"

if ! read -r -a spread <<<"$("$VCLUSTER" mpirun-args)" || ((${#spread[@]} == 0)); then
    fail "mpi_vcluster: test/vcluster mpirun-args" "printed nothing"
    exit 1
fi
# --bind-to none: the virtual nodes share the machine's cores, but each
# node's orted would bind its ranks to cores 0 and 1 as if it had them alone.
spread+=(--map-by ppr:2:node --bind-to none)
mpi_base_args "$NP"
for prog in "${MPI_PROGRAMS[@]}"; do
    mpi_case "mpi_vcluster $prog np$NP $tag" "$prog" "${spread[@]}" "${MPI_ARGS[@]}" -np "$NP"
done
exit 0
