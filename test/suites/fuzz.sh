#!/usr/bin/env bash
# libFuzzer harnesses (test/fuzz/README.md): each is built with clang
# (-fsanitize=fuzzer,address), runs the inputs that once crashed it
# (test/fuzz/regress/NAME), then fuzzes from its seeds for FUZZ_SECONDS
# (default 12 s; the whole suite stays within about 90 s).  A crash, an
# ASan report, a leak or an input that takes 30 s (a hang: every input
# takes milliseconds; the margin is for a loaded machine) fails the case.  Without
# clang or libFuzzer the suite is skipped with the reason.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
FUZZ=$TOP/test/fuzz
OUT=$BUILD/test/fuzz/out
SECS=${FUZZ_SECONDS:-12}
HARNESSES=(rings link migproto image ctlmsg)

with_timeout 300 "$FUZZ/build.sh" "$OUT" >"$SCRATCH/build.log" 2>&1
rc=$?
if ((rc == 3)); then
    skip "fuzz harnesses" "$(tail -n 1 "$SCRATCH/build.log")"
    exit 0
elif ((rc != 0)); then
    fail "fuzz harnesses build" "$(grep -m 3 -E 'error|undefined' "$SCRATCH/build.log" | tr '\n' '|')"
    exit 0
fi
pass "fuzz harnesses build (clang, libFuzzer, ASan)"

fuzz_one() { # fuzz_one NAME: regressions, then SECS seconds from the seeds
    local h=$1 bin=$OUT/fuzz_$1 corpus=$SCRATCH/corpus_$1 max=8192
    [[ $h == image || $h == migproto ]] && max=16384
    mkdir -p "$corpus"
    [[ -d $FUZZ/seeds/$h ]] && cp "$FUZZ/seeds/$h"/* "$corpus"/
    if [[ -d $FUZZ/regress/$h ]]; then
        "$bin" -timeout=30 "$FUZZ/regress/$h"/* >"$SCRATCH/$h.regress.log" 2>&1 ||
            { grep -m 5 -E 'ERROR|SUMMARY|Running' "$SCRATCH/$h.regress.log"; return 1; }
    fi
    (cd "$SCRATCH" && "$bin" -max_total_time="$SECS" -max_len=$max -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 "$corpus" >"$SCRATCH/$h.log" 2>&1)
    local rc=$?
    grep -E '^#[0-9]+[[:space:]]+DONE' "$SCRATCH/$h.log" | tail -n 1
    grep -E 'stat::number_of_executed_units' "$SCRATCH/$h.log"
    if ((rc != 0)); then
        grep -m 8 -E 'ERROR|SUMMARY|#[0-9] 0x.* in [a-z_]+ /' "$SCRATCH/$h.log"
        ls "$SCRATCH"/crash-* "$SCRATCH"/leak-* "$SCRATCH"/timeout-* "$SCRATCH"/oom-* 2>/dev/null
        return 1
    fi
}
for h in "${HARNESSES[@]}"; do
    run_case "fuzz $h: regressions pass, ${SECS} s of fuzzing without a crash, leak or hang" \
        $((SECS + 60)) fuzz_one "$h"
    grep -E 'DONE' "$SCRATCH/$h.log" | tail -n 1 | sed "s/^/   fuzz $h: /"
done
