#!/bin/bash
# test/suites/pager.sh -- lazy moves (issue 11, migrd/pager): a process
# moved with `migrctl migrate --lazy-no-push` resumes with the pages it
# touches and fetches the rest on fault.  Every case's program (test/pager/
# lazymem.c) fills its memory with a pattern, is moved right after, and
# checks every byte: one thread; 8 threads faulting the same and different
# pages at once; madvise(DONTNEED) (must read zeros: never fetched), munmap
# and mremap of pages away; a fork (the child faults on its own copy); the
# source's migrd killed with pages away (the process is killed with the
# reason in the log, its stub ends, nothing hangs); the destination's migrd
# killed (the process dies with it: never runs on zeros); a move back home
# and on while pages are away (they are fetched first); `ps` AWAY; push.  Own virtual cluster
# (MIGR_VCLUSTER_ID=11), torn down at exit.
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-11}
V=$VCLUSTER
C=$MIGRCTL_BIN
STATE=/run/migr-vcluster$MIGR_VCLUSTER_ID

if [[ $(id -u) != 0 ]]; then
    skip pager "needs root (namespaces, ptrace, userfaultfd of another process)"
    exit 0
fi
if ! cc -O2 -pthread -o "$SCRATCH/lazymem" "$TOP/test/pager/lazymem.c" 2>"$SCRATCH/cc.out"; then
    fail build-lazymem "$(tail -n 2 "$SCRATCH/cc.out" | tr '\n' '|')"
    exit 0
fi
LAZYMEM=$SCRATCH/lazymem
if ! vcluster_up 3; then
    fail vcluster "cannot bring up 3 nodes (see above)"
    exit 0
fi

# start_run NAME ARGS... (waits for "ready") and wait_run NAME SECONDS:
# test/lib.sh
export RUN_READY=ready

lazy_move() { with_timeout 60 "$V" exec "$1" "$C" migrate "$2" --to "$3" "${4:---lazy-no-push}"; }

# service_line NODE PID: the fault service's last log line of PID on NODE
service_line() { grep -h "pid $2: fault service ended" "$STATE/$1/migrd.log" | tail -n 1; }

# intact NAME: the run ended with status 0 and said "intact"
intact() {
    local rc
    rc=$(wait_run "$1" "${2:-60}")
    [[ $rc == 0 ]] && grep -q '^intact$' "$SCRATCH/$1.out" && return 0
    echo "status $rc; output: $(tr '\n' '|' <"$SCRATCH/$1.out") $(tr '\n' '|' <"$SCRATCH/$1.err")"
    return 1
}

# --- MODE: moved lazily n1 -> n2 right after the fill, every byte checked;
# every page came through the fault service (none silently zero)
case_mode() {
    local mode=$1 mib=$2 line
    start_run "$mode" "$LAZYMEM" "$mib" 2 "$mode" || { echo "no pid, or not ready"; return 1; }
    lazy_move n1 "$PID" n2 || return 1
    intact "$mode" || return 1
    for ((i = 0; i < 30; i++)); do
        line=$(service_line n2 "$PID")
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ $line == *"every page is here"* ]] || { echo "service: ${line:-no log line}"; return 1; }
    echo "$line"
}
run_case lazy-64MiB-check 90 case_mode check 64
run_case lazy-threads-faulting-at-once 90 case_mode threads 32
run_case lazy-madvise-munmap-mremap 90 case_mode free 32
run_case lazy-fork-child-faults 90 case_mode fork 32

# pages freed with MADV_DONTNEED after the move were never fetched
case_never_fetched() {
    local line
    line=$(service_line n2 "$(cat "$SCRATCH/free.pid")")
    # 32 MiB: the first quarter freed, the second unmapped: 4096 pages of
    # 8192 are fetched (third and fourth quarters), no more
    [[ $line =~ ([0-9]+)\ pages\ asked ]] || { echo "no service line"; return 1; }
    ((BASH_REMATCH[1] <= 4096 + 64)) || { echo "fetched ${BASH_REMATCH[1]} pages: freed ones too: $line"; return 1; }
}
run_case lazy-freed-pages-never-fetched 10 case_never_fetched

# --- migrctl ps where it runs: the pages away and where they are; none
# once it touched them all
case_ps_away() {
    start_run psaway "$LAZYMEM" 32 2 check || { echo "no pid"; return 1; }
    lazy_move n1 "$PID" n2 || return 1
    local away
    away=$("$V" exec n2 "$C" ps | ps_fields "$PID" AWAY)
    [[ $away =~ ^[0-9]+@n1$ ]] && ((${away%@*} > 8000)) || { echo "AWAY column: '$away'"; return 1; }
    intact psaway || return 1
    away=$("$V" exec n2 "$C" ps | ps_fields "$PID" AWAY)
    [[ -z $away || $away == - ]] || { echo "AWAY after the end: '$away'"; return 1; }
}
run_case lazy-ps-pages-away 60 case_ps_away

# --- push (--lazy): a process that touches nothing stops depending on its
# source within size/bandwidth + 1 s (64 MiB: well under 3 s here)
case_push() {
    start_run push "$LAZYMEM" 64 4 spin || { echo "no pid"; return 1; }
    lazy_move n1 "$PID" n2 --lazy || return 1
    local t0=$SECONDS line
    for ((i = 0; i < 50; i++)); do
        line=$(service_line n2 "$PID")
        [[ -n $line ]] && break
        sleep 0.1
    done
    [[ $line == *"every page is here"* && $line =~ \ 0\ pages\ asked\ and\ 16384\ pushed\ from\ n1\ in\ ([0-9]+) ]] ||
        { echo "service: ${line:-none within 5 s}"; return 1; }
    ((BASH_REMATCH[1] < 3000)) || { echo "push took ${BASH_REMATCH[1]} ms"; return 1; }
    grep -q "pid $PID: page store for n2 ended" "$STATE/n1/migrd.log" || { echo "the store at n1 did not end"; return 1; }
    intact push
}
run_case lazy-push-ends-dependency 60 case_push

# --- the source's migrd dies with pages away: the process is killed at its
# destination with the reason, the stub at home ends, nothing hangs
case_source_killed() {
    start_run srckill "$LAZYMEM" 32 3 spin || { echo "no pid"; return 1; }
    lazy_move n1 "$PID" n2 || return 1
    vc_kill_migrd n1 || return 1
    local rc
    rc=$(wait_run srckill 30)
    [[ $rc != timeout && $rc != 0 ]] || { echo "stub status $rc (expected a failure, no hang)"; return 1; }
    for ((i = 0; i < 50; i++)); do
        "$V" exec n2 test -e "/proc/$PID" || break
        sleep 0.1
    done
    ! "$V" exec n2 test -e "/proc/$PID" || { echo "pid $PID still runs on n2"; return 1; }
    grep -q "pid $PID: killed: [0-9]* pages of it are lost on n1" "$STATE/n2/migrd.log" ||
        { echo "no reason in n2's log"; return 1; }
    "$V" migrd-restart n1 >/dev/null || { echo "cannot restart n1's migrd"; return 1; }
}
run_case lazy-source-migrd-killed 90 case_source_killed

# --- the destination's migrd dies with pages away: its userfaultfd goes
# with it, so the process must die too (it would read zeros), not run on
case_dest_killed() {
    start_run dstkill "$LAZYMEM" 32 2 spin || { echo "no pid"; return 1; }
    lazy_move n1 "$PID" n2 || return 1
    vc_kill_migrd n2 || return 1
    for ((i = 0; i < 50; i++)); do
        "$V" exec n2 test -e "/proc/$PID" || break
        sleep 0.1
    done
    local gone=yes
    "$V" exec n2 test -e "/proc/$PID" && gone=no
    "$V" migrd-restart n2 >/dev/null || { echo "cannot restart n2's migrd"; return 1; }
    [[ $gone == yes ]] || { echo "pid $PID still runs on n2 without its pager"; return 1; }
    sleep 5 # the time it would have taken to read its memory
    ! grep -q -e CORRUPT -e intact "$SCRATCH/dstkill.out" || { echo "it ran on: $(tr '\n' '|' <"$SCRATCH/dstkill.out")"; return 1; }
}
run_case lazy-destination-migrd-killed 60 case_dest_killed

# --- home -> n2 -> home -> n3, lazily each time, pages away at every move
case_back_home() {
    start_run back "$LAZYMEM" 32 3 check || { echo "no pid"; return 1; }
    lazy_move n1 "$PID" n2 && lazy_move n1 "$PID" n1 && lazy_move n1 "$PID" n3 || return 1
    intact back
}
run_case lazy-home-and-back-and-on 120 case_back_home
