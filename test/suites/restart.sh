#!/bin/bash
# test/suites/restart.sh -- migrd restarts lose no process (issue 10,
# part 1): a restart of migrd on the node where a moved process runs moves
# it away first (home, or another node), so that it is still listed, its
# output and exit status arrive and nothing is left running on any node;
# a restart on its home while it never moved keeps it listed (its deputy
# registers it again), and it can still move.
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID=12), torn down at exit.
source "$(dirname "$0")/../lib.sh"
source "$TOP/test/deputy_lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-12}
deputy_suite restart counter || exit 0
COUNTER=$SCRATCH/counter

# start_counter NAME: 60 ticks, 100 ms apart, exit 7, under migrctl run on
# n1 (the nodes' pids apart: a restarted migrd may have taken its pid elsewhere)
start_counter() {
    vc_pids_apart
    rm -f "$SCRATCH/$1".{pid,rc}
    ( "$V" exec n1 "$C" run --pidfile "$SCRATCH/$1.pid" -- "$COUNTER" 60 100 7 >"$SCRATCH/$1.out" 2>"$SCRATCH/$1.err"
      echo $? >"$SCRATCH/$1.rc" ) &
    deputy_pid "$1"
}

# restart NODE: migrd on NODE restarted
restart() { with_timeout 30 "$V" migrd-restart "$1" >/dev/null || { echo "cannot restart migrd on $1"; return 1; }; }

# listed_as "NODE STATE"...: the home (n1) lists PID so (one of them)
listed_as() {
    local at i w
    for ((i = 0; i < 30; i++)); do
        at=$("$V" exec n1 "$C" ps | ps_fields "$PID" NODE STATE)
        for w; do [[ $at == "$w" ]] && return 0; done
        sleep 0.1
    done
    echo "after the restart n1 lists pid $PID as '${at:-nothing}', not as one of: $*"
    return 1
}

# ended_whole NAME: status 7, all 60 ticks in order, no counter left on any node
ended_whole() {
    local rc n left=""
    rc=$(deputy_rc "$1" 30)
    [[ $rc == 7 ]] || { echo "status $rc, not 7: $(tr '\n' '|' <"$SCRATCH/$1.err")"; return 1; }
    diff <(for ((i = 1; i <= 60; i++)); do echo "tick $i"; done) "$SCRATCH/$1.out" >/dev/null ||
        { echo "output lost: $(wc -l <"$SCRATCH/$1.out") of 60 lines"; return 1; }
    for n in n1 n2 n3; do
        "$V" exec "$n" pgrep -x counter >/dev/null && left+=" $n"
    done
    [[ -z $left ]] || { echo "a counter is left running on$left"; return 1; }
}

case_where_it_runs() {
    start_counter away || return 1
    tour n2 || return 1
    restart n2 && listed_as "n1 running" "n3 away" && ended_whole away
}
run_case restart-where-it-runs 60 case_where_it_runs

case_where_it_runs_2() {
    start_counter away2 || return 1
    tour n2 n3 || return 1
    restart n3 && listed_as "n1 running" "n2 away" && ended_whole away2
}
run_case restart-where-it-runs-after-2-moves 60 case_where_it_runs_2

# the home's migrd restarted while the process never moved: its deputy
# registers it with the new one, which lists it and can move it
case_home_never_moved() {
    start_counter home || return 1
    sleep 0.3
    restart n1 && listed_as "n1 running" && tour n2 && ended_whole home
}
run_case restart-home-never-moved 60 case_home_never_moved

# the home's migrd restarted while the process runs elsewhere: the deputy
# holds what the home held, gives it to the new migrd, the process's node
# reconnects; it moves on from there (asked at the new home) and ends
case_home_moved_away() {
    start_counter homeaway || return 1
    tour n2 || return 1
    restart n1 && listed_as "n2 away" && tour n3 && ended_whole homeaway
}
run_case restart-home-while-away 60 case_home_moved_away

# ... while it is back at home (migrd's child there): it moves away first
case_home_moved_back() {
    start_counter homeback || return 1
    tour n2 n1 || return 1
    restart n1 && listed_as "n2 away" "n3 away" && tour n1 && ended_whole homeback
}
run_case restart-home-while-back-at-home 60 case_home_moved_back

# stdin (a pipe into migrctl run) still reaches it after its home restarted
case_home_stdin() {
    local rc
    vc_pids_apart
    rm -f "$SCRATCH/echo".{pid,rc}
    ( { echo "line one"; sleep 2.5; echo "line two"; } |
        "$V" exec n1 "$C" run --pidfile "$SCRATCH/echo.pid" -- "$COUNTER" echo 3 >"$SCRATCH/echo.out" 2>"$SCRATCH/echo.err"
      echo $? >"$SCRATCH/echo.rc" ) &
    deputy_pid echo || return 1
    tour n2 && restart n1 || return 1
    rc=$(deputy_rc echo 20)
    [[ $rc == 3 ]] || { echo "status $rc, not 3: $(tr '\n' '|' <"$SCRATCH/echo.err")"; return 1; }
    diff <(printf 'got: line one\ngot: line two\n') "$SCRATCH/echo.out" >/dev/null ||
        { echo "input lost: $(tr '\n' '|' <"$SCRATCH/echo.out")"; return 1; }
}
run_case restart-home-stdin-goes-on 60 case_home_stdin

# a shell redirect shared with the home keeps one offset across the
# restart of the home (its original is held by the deputy meanwhile)
case_home_redirect() {
    local rc
    vc_pids_apart
    rm -f "$SCRATCH/redir".{pid,rc}
    ( "$V" exec n1 "$C" run --pidfile "$SCRATCH/redir.pid" -- "$COUNTER" 60 100 7; echo "rc $?"; echo "done"
      echo 0 >"$SCRATCH/redir.rc" ) >"$SCRATCH/redir.out" 2>"$SCRATCH/redir.err" &
    deputy_pid redir || return 1
    tour n2 && restart n1 && tour n3 || return 1
    rc=$(deputy_rc redir 30)
    [[ $rc == 0 ]] || { echo "the shell did not end"; return 1; }
    cmp <(for ((i = 1; i <= 60; i++)); do echo "tick $i"; done; echo "rc 7"; echo "done") "$SCRATCH/redir.out" ||
        { echo "file differs: $(tail -n 3 "$SCRATCH/redir.out" | tr '\n' '|')"; return 1; }
}
run_case restart-home-redirect-keeps-one-offset 60 case_home_redirect
