# shellcheck shell=bash
# test/deputy_lib.sh -- what the suites that run a program under `migrctl
# run` in the background share (files.sh, restart.sh): their set-up, its
# pid from the deputy's pid file, its status, moving it.  Source it after
# test/lib.sh; do not run it.

V=$VCLUSTER
C=$MIGRCTL_BIN

# deputy_suite SUITE PROG: as root, test/migrate/PROG.c built into
# $SCRATCH/PROG and 3 virtual nodes up; else the suite's SKIP or FAIL line
# and a non-zero status (the suite then exits 0).
deputy_suite() {
    if [[ $(id -u) != 0 ]]; then
        skip "$1" "needs root (namespaces, ptrace, clone3 set_tid)"
        return 1
    fi
    cc -O2 -o "$SCRATCH/$2" "$TOP/test/migrate/$2.c" 2>"$SCRATCH/cc.out" ||
        { fail "build-$2" "$(tail -n 2 "$SCRATCH/cc.out" | tr '\n' '|')"; return 1; }
    vcluster_up 3 || { fail vcluster "cannot bring up 3 nodes (see above)"; return 1; }
}

# deputy_pid NAME: wait (5 s) for $SCRATCH/NAME.pid, the pid file of a
# `migrctl run --pidfile`; sets PID, fails without it.
deputy_pid() {
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $SCRATCH/$1.pid ]] && break
        sleep 0.1
    done
    PID=$(cat "$SCRATCH/$1.pid" 2>/dev/null)
    [[ -n $PID ]] || { echo "no pid"; return 1; }
}

# deputy_rc NAME SECONDS: wait for $SCRATCH/NAME.rc; prints it, or timeout.
deputy_rc() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -s $SCRATCH/$1.rc ]] && break
        sleep 0.1
    done
    cat "$SCRATCH/$1.rc" 2>/dev/null || echo timeout
}

# tour NODE...: move PID (asked at its home, n1) to each node in turn
tour() {
    local to
    for to; do
        sleep 0.4
        with_timeout 60 "$V" exec n1 "$C" migrate "$PID" --to "$to" || { echo "move to $to failed"; return 1; }
    done
}
