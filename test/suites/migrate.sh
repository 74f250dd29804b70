#!/bin/bash
# test/suites/migrate.sh -- live migration between virtual nodes (issue 4):
# the home stub (migrctl run), moves n1->n2->n3->n1 with forwarded stdio,
# stdin after a move, signals through the stub, a zoo (threads, timers, a
# pipe to its child at home) A->B->C->A, a seeded random tour of 20 moves,
# 48 MiB of memory that keeps changing moved four times,
# and refused or broken moves (pid taken, corrupt stream, link cut,
# destination killed, a CPU feature missing at the destination)
# that must leave the process running at its source with its output intact;
# a process that ends the moment it arrives is reported with its status.
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID=5), torn down at exit.
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-5}
export MIGR_TEST_HOOKS=1 # its broken moves use migrctl migrate --inject (root + migrd test hooks)
V=$VCLUSTER
C=$MIGRCTL_BIN

if [[ $(id -u) != 0 ]]; then
    skip migrate "needs root (namespaces, ptrace, clone3 set_tid)"
    exit 0
fi
# build NAME [CC-FLAGS...]: test/migrate/NAME.c -> $SCRATCH/NAME, or a
# failed case build-NAME
build() {
    local name=$1
    shift
    cc -O2 "$@" -o "$SCRATCH/$name" "$TOP/test/migrate/$name.c" 2>"$SCRATCH/cc.out" && return 0
    fail "build-$name" "$(tail -n 2 "$SCRATCH/cc.out" | tr '\n' '|')"
    return 1
}
build counter && build zoo -pthread && build touch && build arrive || exit 0
COUNTER=$SCRATCH/counter ZOO=$SCRATCH/zoo TOUCH=$SCRATCH/touch ARRIVE=$SCRATCH/arrive
if ! vcluster_up 3; then
    fail vcluster "cannot bring up 3 nodes (see above)"
    exit 0
fi

# start_run NAME ARGS... and wait_run NAME SECONDS: test/lib.sh

move() { with_timeout 60 "$V" exec "$1" "$C" migrate "$2" --to "$3" "${@:4}"; }

expected() { for ((i = 1; i <= $1; i++)); do echo "tick $i"; done; }

# --- a process that ends the moment it arrives (while its new node is
# still proving itself to the home): its output and status reach the home
case_end_on_arrival() {
    local round rc to
    for ((round = 1; round <= 6; round++)); do
        to=n$((round % 2 + 2))
        RUN_READY="started on n1" start_run arrive "$ARRIVE" || { echo "round $round: not started"; return 1; }
        move n1 "$PID" "$to" >/dev/null || { echo "round $round: the move to $to failed"; return 1; }
        rc=$(wait_run arrive 20)
        [[ $rc == 7 ]] || { echo "round $round: status $rc, not 7 (the end never reached the home)"; return 1; }
        grep -qx "arrived on $to" "$SCRATCH/arrive.out" || { echo "round $round: output $(tr '\n' '|' <"$SCRATCH/arrive.out")"; return 1; }
    done
}
run_case ends-on-arrival-6-rounds 150 case_end_on_arrival

# --- a tour n1 -> n2 -> n3 -> n1, output and status as without moves
case_tour() {
    start_run tour "$COUNTER" 40 50 7 || { echo "no pid"; return 1; }
    sleep 0.4
    move n1 "$PID" n2 && sleep 0.3 && move n1 "$PID" n3 && sleep 0.3 && move n1 "$PID" n1 || return 1
    [[ $("$V" exec n1 "$C" ps | ps_fields "$PID" HOME NODE STATE MOVES) == "n1 n1 running 3" ]] ||
        { echo "ps: $("$V" exec n1 "$C" ps)"; return 1; }
    local rc
    rc=$(wait_run tour 20)
    [[ $rc == 7 ]] || { echo "status $rc, not 7"; return 1; }
    diff <(expected 40) "$SCRATCH/tour.out" >"$SCRATCH/tour.diff" || { echo "output differs: $(head -n 4 "$SCRATCH/tour.diff" | tr '\n' '|')"; return 1; }
}
run_case tour-n1-n2-n3-n1 60 case_tour

# --- the tour in the move logs: each move on the node it left, with its figures
case_log() {
    local n from to PID
    PID=$(cat "$SCRATCH/tour.pid") || return 1
    for n in "n1 n1 n2" "n2 n2 n3" "n3 n3 n1"; do
        read -r n from to <<<"$n"
        with_timeout 10 "$V" exec "$n" "$C" log --json >"$SCRATCH/log.$n.json" || { echo "log on $n failed"; return 1; }
        python3 - "$SCRATCH/log.$n.json" "$PID" "$from" "$to" <<'PY' || { echo "log on $n: $(cat "$SCRATCH/log.$n.json")"; return 1; }
import json, sys
doc = json.load(open(sys.argv[1]))
pid, frm, to = int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = [m for m in doc["moves"] if m["pid"] == pid]
assert len(m) == 1, "%d moves of pid %d" % (len(m), pid)
m = m[0]
assert m["schema"] == 1 and m["result"] == "ok" and m["reason"] is None, m
assert (m["from"], m["to"]) == (frm, to), (m["from"], m["to"])
assert m["bytes"] > 0 and 0 < m["frozen_ms"] <= m["total_ms"] and m["requester"] == "root", m
PY
    done
    "$V" exec n1 "$C" log | grep -Eq "^[0-9-]+ [0-9:]+ +$PID root .* n1 +n2 .* ok$" ||
        { echo "n1's log table: $("$V" exec n1 "$C" log | tr '\n' '|')"; return 1; }
}
run_case move-log-of-the-tour 30 case_log

# --- migrctl check on a node of the cluster: its map, key, ports (migrd's), migrd
case_check_node() {
    local out=$SCRATCH/check.n2 rc fails
    with_timeout 60 "$V" exec n2 "$C" check --config "/run/migr-vcluster${MIGR_VCLUSTER_ID:-0}/cluster.conf" --node n2 \
        >"$out" 2>&1
    rc=$?
    fails=$(grep -c '^FAIL' "$out")
    ((rc == (fails > 0))) || { echo "exit $rc with $fails FAIL lines"; return 1; }
    local want
    for want in "cluster map +.*: 3 nodes, this one is n2" "cluster key +.*cluster\.key: 32 bytes" \
        "link port +.* is held by migrd \(pid [0-9]+\)" "migration port +.* is held by migrd" \
        "migrd +answers on .*: node n2, up"; do
        grep -Eq "^ok +$want" "$out" || { echo "no line /ok  $want/: $(tr '\n' '|' <"$out")"; return 1; }
    done
}
run_case check-on-node-n2 60 case_check_node

# --- ask the node where it runs, not the home; no-migrate is refused
case_unmigrated() {
    start_run plain "$COUNTER" 10 20 0 || return 1
    local rc
    rc=$(wait_run plain 10)
    [[ $rc == 0 ]] && diff -q <(expected 10) "$SCRATCH/plain.out"
}
run_case unmigrated-run 20 case_unmigrated

case_no_migrate() {
    rm -f "$SCRATCH/nm.pid"
    ( "$V" exec n1 "$C" run --no-migrate --pidfile "$SCRATCH/nm.pid" -- "$COUNTER" 20 50 0 >/dev/null 2>&1 ) &
    sleep 0.5
    move n1 "$(cat "$SCRATCH/nm.pid")" n2
}
expect_fail no-migrate-refused 20 "started with --no-migrate" case_no_migrate

# --- stdin piped into migrctl run reaches the process after it moved
case_stdin() {
    # a pipe from a timed writer: line one before any move, two after the
    # first move, three after the second; EOF ends the program (status 3)
    local rc
    rm -f "$SCRATCH/echo.pid" "$SCRATCH/echo.rc"
    ( { echo "line one"; sleep 1.5; echo "line two"; sleep 1.5; echo "line three"; } |
        "$V" exec n1 "$C" run --pidfile "$SCRATCH/echo.pid" -- "$COUNTER" echo 3 >"$SCRATCH/echo.out" 2>&1
      echo $? >"$SCRATCH/echo.rc" ) &
    sleep 0.7
    PID=$(cat "$SCRATCH/echo.pid" 2>/dev/null)
    [[ -n $PID ]] || { echo "no pid"; return 1; }
    move n1 "$PID" n2 || return 1
    sleep 1.5
    move n1 "$PID" n3 || return 1
    rc=$(wait_run echo 20)
    [[ $rc == 3 ]] || { echo "status $rc, not 3; out: $(tr '\n' '|' <"$SCRATCH/echo.out")"; return 1; }
    diff <(printf 'got: line one\ngot: line two\ngot: line three\n') "$SCRATCH/echo.out"
}
run_case stdin-after-move 60 case_stdin

# --- a stream into stdin while the process moves from node to node: every
# line once, in order (input that reached the old node after its unread
# input left with the move goes back through the home)
case_stdin_stream() {
    local rc to fed i feeding=$SCRATCH/feeding
    rm -f "$SCRATCH/stream.pid" "$SCRATCH/stream.rc" "$SCRATCH/fed"
    touch "$feeding"
    ( ( n=0
        while [[ -e $feeding ]]; do n=$((n + 1)); echo "msg $n"; sleep 0.003; done
        echo "$n" >"$SCRATCH/fed" ) |
        "$V" exec n1 "$C" run --pidfile "$SCRATCH/stream.pid" -- "$COUNTER" echo 4 >"$SCRATCH/stream.out" 2>&1
      echo "${PIPESTATUS[1]}" >"$SCRATCH/stream.rc" ) &
    for ((i = 0; i < 50; i++)); do [[ -s $SCRATCH/stream.pid ]] && break; sleep 0.1; done
    PID=$(cat "$SCRATCH/stream.pid" 2>/dev/null)
    [[ -n $PID ]] || { rm -f "$feeding"; echo "no pid"; return 1; }
    for to in n2 n3 n2 n3 n2 n3 n2 n3 n1; do
        sleep 0.2
        move n1 "$PID" "$to" >/dev/null || { rm -f "$feeding"; echo "the move to $to failed"; return 1; }
    done
    rm -f "$feeding"
    rc=$(wait_run stream 20)
    [[ $rc == 4 ]] || { echo "status $rc, not 4"; return 1; }
    fed=$(cat "$SCRATCH/fed")
    diff <(seq 1 "$fed" | sed 's/^/got: msg /') "$SCRATCH/stream.out" >"$SCRATCH/stream.diff" ||
        { echo "of $fed lines fed: $(grep -c '^<' "$SCRATCH/stream.diff") missing, $(grep -c '^>' "$SCRATCH/stream.diff") extra: $(head -n 3 "$SCRATCH/stream.diff" | tr '\n' '|')"; return 1; }
}
run_case stdin-streamed-during-9-moves 90 case_stdin_stream

# --- SIGTERM to the stub reaches the moved process; the stub dies of it
case_signal() {
    start_run sig "$COUNTER" 1000 50 0 || return 1
    sleep 0.3
    move n1 "$PID" n2 || return 1
    sleep 0.3
    # the stub is PID's parent at home: find it in n1 by its child
    local stub
    stub=$("$V" exec n1 sh -c "grep -l 'migrctl' /proc/[0-9]*/cmdline 2>/dev/null | sed 's|/proc/||;s|/cmdline||' | while read p; do grep -q ' run ' /dev/null; tr '\0' ' ' </proc/\$p/cmdline | grep -q -- '--pidfile $SCRATCH/sig.pid' && echo \$p; done | head -n 1")
    [[ -n $stub ]] || { echo "stub not found"; return 1; }
    "$V" exec n1 kill -TERM "$stub"
    local rc
    rc=$(wait_run sig 10)
    [[ $rc == 143 ]] || { echo "status $rc, not 143"; return 1; }
}
run_case signal-through-stub 30 case_signal

# --- 48 MiB that keep changing (five rounds a second, every page checked
# each round), moved A -> B -> C -> A -> B: whole regions take their pages
# over from the receive buffer on each destination, and are settled while
# the process writes to them
case_churn() {
    local rc
    start_run churn "$TOUCH" 48 8 churn || return 1
    with_timeout 20 sh -c "until grep -q ready '$SCRATCH/churn.out'; do sleep 0.1; done" || { echo "not ready"; return 1; }
    move n1 "$PID" n2 && sleep 0.5 && move n1 "$PID" n3 && sleep 0.5 && move n1 "$PID" n1 && sleep 0.5 &&
        move n1 "$PID" n2 || return 1
    rc=$(wait_run churn 30)
    [[ $rc == 0 ]] || { echo "status $rc: $(grep -m1 -e CORRUPT -e intact "$SCRATCH/churn.out")"; return 1; }
    grep -q '^intact$' "$SCRATCH/churn.out" || { echo "no 'intact' line"; return 1; }
}
run_case churning-48mib-tour 90 case_churn

# --- n2's memory cgroup has room for 24 MiB more, the process holds 64:
# its move is refused with the reason, before anything is frozen or sent,
# nothing is OOM-killed, and it ends intact where it was
n2_memcg() {
    local d
    for d in $(cat "${MIGR_VCLUSTER_STATE:-/run/migr-vcluster$MIGR_VCLUSTER_ID}/n2/cgroups" 2>/dev/null); do
        [[ -f $d/memory.limit_in_bytes ]] && { echo "$d memory.limit_in_bytes memory.usage_in_bytes"; return; }
        [[ -f $d/memory.max ]] && { echo "$d memory.max memory.current"; return; }
    done
}
case_memcg_full() {
    local cg lim use rc
    read -r cg lim use < <(n2_memcg)
    [[ -n $cg ]] || { echo "no memory cgroup for n2 (see test/vcluster cg_create)"; return 1; }
    at_exit "echo max >'$cg/$lim' || echo -1 >'$cg/$lim'"
    # it would run a minute (a loaded machine may be slow to ask for the
    # move); SIGTERM ends it after the check once the move is refused
    start_run memcg "$TOUCH" 64 60 || return 1
    with_timeout 20 sh -c "until grep -q ready '$SCRATCH/memcg.out'; do sleep 0.1; done" || { echo "not ready"; return 1; }
    echo $(($(cat "$cg/$use") + (24 << 20))) >"$cg/$lim" || { echo "cannot limit $cg"; return 1; }
    if move n1 "$PID" n2 >"$SCRATCH/memcg.move" 2>&1; then
        echo "moved into a full memory cgroup: $(cat "$SCRATCH/memcg.move")"; return 1
    fi
    echo -1 >"$cg/$lim" 2>/dev/null || echo max >"$cg/$lim"
    grep -q "MiB free on n2 (memory cgroup .*n2); the process needs 6[0-9] MiB" "$SCRATCH/memcg.move" ||
        { echo "refused without the reason: $(cat "$SCRATCH/memcg.move")"; return 1; }
    "$V" exec n2 "$C" status >/dev/null || { echo "n2's migrd does not answer"; return 1; }
    "$V" exec n1 kill -TERM "$PID" || { echo "cannot end pid $PID on n1"; return 1; }
    rc=$(wait_run memcg 30)
    [[ $rc == 0 ]] && grep -q '^intact$' "$SCRATCH/memcg.out" ||
        { echo "status $rc: $(tail -n 1 "$SCRATCH/memcg.out")"; return 1; }
}
run_case refused-memory-cgroup-full 60 case_memcg_full

# --- faults: the process stays at its source with its output intact
# fault_run NAME ARGS-OF-migrctl-migrate: run a counter, try a move to n2
# that must fail, then check it finished on n1 with the full output.
check_intact() {
    local name=$1 n=$2 rc
    rc=$(wait_run "$name" 30)
    [[ $rc == 5 ]] || { echo "status $rc, not 5"; return 1; }
    diff -q <(expected "$n") "$SCRATCH/$name.out" >/dev/null || { echo "output not intact"; return 1; }
}

case_pid_taken() {
    start_run taken "$COUNTER" 30 50 5 || return 1
    vc_take_pid n2 "$PID" 20
    local hold=$HOLD_PID
    if move n1 "$PID" n2 >"$SCRATCH/taken.move" 2>&1; then
        kill "$hold"; echo "moved although pid $PID is taken"; return 1
    fi
    kill "$hold" 2>/dev/null
    grep -q "pid $PID is taken on n2" "$SCRATCH/taken.move" || { echo "reason: $(cat "$SCRATCH/taken.move")"; return 1; }
    check_intact taken 30
}
run_case refused-pid-taken 40 case_pid_taken

case_corrupt() {
    start_run corrupt "$COUNTER" 30 50 5 || return 1
    sleep 0.3
    if move n1 "$PID" n2 --inject corrupt >"$SCRATCH/corrupt.move" 2>&1; then
        echo "a corrupt image was restored"; return 1
    fi
    grep -q "image refused" "$SCRATCH/corrupt.move" || { echo "reason: $(cat "$SCRATCH/corrupt.move")"; return 1; }
    check_intact corrupt 30
}
run_case corrupt-stream 40 case_corrupt

# --- the zoo (threads, itimer, timerfd, a pipe to its child, which stays at
# home) moved A -> B -> C -> A.  Its stdout is a pipe (as under an orted):
# a regular file shared with the child would be reopened by path after the
# move, with its own offset.
case_zoo() {
    local rc i
    rm -f "$SCRATCH/zoo.pid" "$SCRATCH/zoo.rc"
    ( "$V" exec n1 "$C" run --pidfile "$SCRATCH/zoo.pid" -- "$ZOO" 80 50 4 2>"$SCRATCH/zoo.err" | cat >"$SCRATCH/zoo.out"
      echo "${PIPESTATUS[0]}" >"$SCRATCH/zoo.rc" ) &
    for ((i = 0; i < 50; i++)); do
        [[ -s $SCRATCH/zoo.pid ]] && break
        sleep 0.1
    done
    PID=$(cat "$SCRATCH/zoo.pid" 2>/dev/null)
    [[ -n $PID ]] || { echo "no pid"; return 1; }
    sleep 0.5
    move n1 "$PID" n2 && sleep 0.5 && move n1 "$PID" n3 && sleep 0.5 && move n1 "$PID" n1 || return 1
    rc=$(wait_run zoo 20)
    [[ $rc == 4 ]] || { echo "status $rc, not 4: $(tail -n 2 "$SCRATCH/zoo.out" | tr '\n' '|')"; return 1; }
    diff <(expected 80) <(grep '^tick' "$SCRATCH/zoo.out") >/dev/null || { echo "ticks lost or out of order"; return 1; }
    diff <(expected 80) <(grep '^child: msg' "$SCRATCH/zoo.out" | sed 's/^child: msg/tick/') >/dev/null ||
        { echo "the child's lines lost or out of order"; return 1; }
    grep -qx 'zoo ok' "$SCRATCH/zoo.out" || { echo "no 'zoo ok': $(grep zoo "$SCRATCH/zoo.out")"; return 1; }
}
run_case zoo-n1-n2-n3-n1 60 case_zoo

# --- a random tour: 20 moves over the 3 nodes (seeded; the seed is in the
# case name, MIGR_TOUR_SEED repeats one), every move asked at the home;
# output and status must be those of an unmigrated run of the same program
# started at the same time with --no-migrate.
TOUR_SEED=${MIGR_TOUR_SEED:-$((RANDOM * 32768 + RANDOM))}
case_random_tour() {
    local i at=n1 to rc rc_ref nodes=(n1 n2 n3)
    RANDOM=$TOUR_SEED
    rm -f "$SCRATCH/rtref.rc"
    ( "$V" exec n1 "$C" run --no-migrate -- "$COUNTER" 1000 20 9 >"$SCRATCH/rtref.out" 2>&1
      echo $? >"$SCRATCH/rtref.rc" ) &
    start_run rtour "$COUNTER" 1000 20 9 || { echo "no pid"; return 1; }
    for ((i = 1; i <= 20; i++)); do
        to=$at
        while [[ $to == "$at" ]]; do to=${nodes[RANDOM % 3]}; done
        sleep "0.$((RANDOM % 3))"
        move n1 "$PID" "$to" >"$SCRATCH/rtour.move" 2>&1 ||
            { echo "move $i $at -> $to: $(cat "$SCRATCH/rtour.move")"; return 1; }
        at=$to
    done
    [[ $("$V" exec n1 "$C" ps | ps_fields "$PID" NODE MOVES) == "$at 20" ]] ||
        { echo "ps after 20 moves (at $at): $("$V" exec n1 "$C" ps | tr '\n' '|')"; return 1; }
    rc=$(wait_run rtour 60)
    rc_ref=$(wait_run rtref 30)
    [[ $rc == 9 && $rc_ref == 9 ]] || { echo "status $rc (unmigrated: $rc_ref), not 9"; return 1; }
    diff "$SCRATCH/rtref.out" "$SCRATCH/rtour.out" >"$SCRATCH/rtour.diff" ||
        { echo "output differs from the unmigrated run: $(head -n 4 "$SCRATCH/rtour.diff" | tr '\n' '|')"; return 1; }
    [[ $(wc -l <"$SCRATCH/rtour.out") == 1000 ]] || { echo "not 1000 lines"; return 1; }
}
run_case "random-tour-20-moves-seed-$TOUR_SEED" 150 case_random_tour

# --- the link cut while the image streams: the destination's bridge port
# goes down (root namespace) during a stalled stream; the move must fail
# within seconds (the dead link noticed, not the 30 s I/O timeout) with a
# one-line reason and the process go on at its source.
CUT_LINK=$(vc_link n2)
case_link_cut() {
    ip link show "$CUT_LINK" >/dev/null 2>&1 || { echo "no link $CUT_LINK (see ip link)"; return 1; }
    start_run cut "$COUNTER" 60 50 5 || return 1
    sleep 0.3
    move n1 "$PID" n2 --inject stall >"$SCRATCH/cut.move" 2>&1 &
    local mv=$! moved=0 t0 took
    sleep 1.2   # the source stalls half-way through the image for 3 s
    ip link set "$CUT_LINK" down
    t0=$SECONDS
    wait "$mv" && moved=1
    took=$((SECONDS - t0))
    ip link set "$CUT_LINK" up
    ((moved == 0)) || { echo "move succeeded although the link was cut"; return 1; }
    ((took <= 15)) || { echo "the source gave up $took s after the cut (more than 15 s)"; return 1; }
    grep -Eq "streaming to n2|no acknowledgement from n2" "$SCRATCH/cut.move" ||
        { echo "reason: $(cat "$SCRATCH/cut.move")"; return 1; }
    [[ $(wc -l <"$SCRATCH/cut.move") == 1 ]] || { echo "reason not one line: $(tr '\n' '|' <"$SCRATCH/cut.move")"; return 1; }
    echo "reported after $took s: $(cat "$SCRATCH/cut.move")"
    [[ $("$V" exec n1 "$C" ps | ps_fields "$PID" NODE STATE) == "n1 running" ]] ||
        { echo "not running at n1: $("$V" exec n1 "$C" ps | tr '\n' '|')"; return 1; }
    check_intact cut 60
}
at_exit "ip link set '$CUT_LINK' up"
run_case link-cut-mid-stream 60 case_link_cut

# --- the destination reads a move's stream off its event loop: while a
# move into n2 is stalled half-way (its source sleeps 3 s), n2 answers
# `status` at once and takes in another move, n3 -> n2, which ends first;
# both processes end intact.
# stalled_pair NODE: a counter "slow" on n1 whose move to n2 stalls
# half-way (in the background: STALLED is the move's pid, SLOW the
# process's), and a counter "other" started on NODE (OTHER its pid).
stalled_pair() {
    start_run slow "$COUNTER" 100 50 5 || { echo "no pid"; return 1; }
    SLOW=$PID
    RUN_NODE=$1 start_run other "$COUNTER" 100 50 5 || { echo "no pid on $1"; return 1; }
    OTHER=$PID
    sleep 0.3
    move n1 "$SLOW" n2 --inject stall >"$SCRATCH/slow.move" 2>&1 &
    STALLED=$!
    sleep 0.6
}
# not_blocked ASKED FROM TO: with n1 -> n2 stalled half-way, node ASKED
# answers `status` in under a second and the other counter, started on
# FROM, moves to TO and ends first; both end intact.
not_blocked() {
    local asked=$1 from=$2 to=$3 t0 ms
    stalled_pair "$from" || return 1
    t0=$(date +%s%N)
    with_timeout 10 "$V" exec "$asked" "$C" status >/dev/null || { echo "$asked did not answer status"; return 1; }
    ms=$((($(date +%s%N) - t0) / 1000000))
    ((ms < 1000)) || { echo "status on $asked took $ms ms during the stalled move"; return 1; }
    move "$from" "$OTHER" "$to" >"$SCRATCH/other.move" 2>&1 || { echo "second move: $(cat "$SCRATCH/other.move")"; return 1; }
    kill -0 "$STALLED" 2>/dev/null || { echo "the stalled move ended before the second one: $(cat "$SCRATCH/slow.move")"; return 1; }
    wait "$STALLED" || { echo "stalled move: $(cat "$SCRATCH/slow.move")"; return 1; }
    check_intact slow 100 && check_intact other 100 || return 1
    echo "$asked answered status in $ms ms; $from -> $to done during the stalled move"
}
run_case destination-not-blocked-by-a-stream 60 not_blocked n2 n3 n2

# --- the source streams the image off its event loop too: while n1's move
# to n2 is stalled half-way (n1's stream sleeps 3 s, the process frozen),
# n1 answers `status` at once and moves another process of its own, to n3,
# which ends first; both processes end intact.
run_case source-not-blocked-by-its-stream 60 not_blocked n1 n1 n3

# --- two nodes move processes to each other at once: n1 -> n2 stalls
# half-way (its source sleeps 3 s with the process frozen) while n2 -> n1
# is asked; neither waits for the other's event loop, so both end within
# a few seconds, not after a handshake's 10 s timeout.
case_cross_moves() {
    local t0 took
    stalled_pair n2 || return 1
    t0=$SECONDS
    move n2 "$OTHER" n1 >"$SCRATCH/other.move" 2>&1 ||
        { echo "n2 -> n1 during the stalled n1 -> n2: $(cat "$SCRATCH/other.move")"; return 1; }
    wait "$STALLED" || { echo "the stalled n1 -> n2: $(cat "$SCRATCH/slow.move")"; return 1; }
    took=$((SECONDS - t0))
    ((took <= 8)) || { echo "both moves took $took s"; return 1; }
    check_intact slow 100 && check_intact other 100 || return 1
    echo "both moves done in $took s"
}
run_case cross-moves-at-once 60 case_cross_moves

# n2's migrd is killed here (the next case restarts it)
case_dest_killed() {
    start_run killed "$COUNTER" 60 50 5 || return 1
    sleep 0.3
    move n1 "$PID" n2 --inject stall >"$SCRATCH/killed.move" 2>&1 &
    local mv=$!
    sleep 1.2
    vc_kill_migrd n2 || return 1
    if wait "$mv"; then
        echo "move succeeded although the destination died"; return 1
    fi
    grep -Eq "streaming to n2|no acknowledgement from n2" "$SCRATCH/killed.move" || { echo "reason: $(cat "$SCRATCH/killed.move")"; return 1; }
    check_intact killed 60
}
run_case destination-killed-mid-stream 60 case_dest_killed

# n2's migrd (killed above) comes back acting as if its CPU lacked sse2,
# which every x86-64 source has: the move is refused at the offer, naming
# the feature, and the process goes on at n1
case_cpu_features() {
    "$V" migrd-restart n2 --hide-cpu-feature sse2 >/dev/null || { echo "cannot restart n2's migrd"; return 1; }
    start_run cpu "$COUNTER" 30 50 5 || return 1
    if move n1 "$PID" n2 >"$SCRATCH/cpu.move" 2>&1; then
        echo "moved to a node without sse2"; return 1
    fi
    grep -q "the CPU of n2 lacks sse2" "$SCRATCH/cpu.move" || { echo "reason: $(cat "$SCRATCH/cpu.move")"; return 1; }
    check_intact cpu 30
}
run_case refused-cpu-features 60 case_cpu_features

