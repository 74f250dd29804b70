#!/usr/bin/env bash
# Unit tests: the shared-memory ring, the receiver's sequencing, the syntax
# of sizes and durations, the frames' MAC, the pager's away directory and
# AMPoM.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
for t in test_ring test_seq test_units test_auth test_pager; do
    bin=$BUILD/test/unit/$t
    if [[ ! -x $bin ]]; then
        fail "unit $t" "not built ($bin)"
        continue
    fi
    timeout 120 "$bin" || [[ $? == 1 ]] || fail "unit $t" "crashed or timed out"
done
