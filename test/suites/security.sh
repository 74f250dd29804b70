#!/usr/bin/env bash
# Authorization on the node (issue 8, part 2, and the reopen of part 3):
# unprivileged users on a virtual cluster of 3 nodes.  The victim is a test
# user (migr-sec, made with useradd when absent), the attacker is nobody.
# The attacker cannot move, signal, stop or deregister the victim's
# process, sees of it only what ps(1) shows, cannot open a mailbox in the
# victim's job, nor put packets into it (from this node or another), nor
# receive its packets (from a mailbox of the job's address on another
# node); --inject is refused to users and, without test hooks, to root; a
# move whose destination would reopen a file through a symbolic link (or
# that the process may not open there) is refused and the process goes on
# at its source; the owner can do all of it to its own process.
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID=4), torn down at exit;
# the migrds start WITHOUT test hooks (MIGR_TEST_HOOKS unset), n1's is
# restarted with --test-hooks for the last cases.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-4}
unset MIGR_TEST_HOOKS
V=$VCLUSTER
C=$MIGRCTL_BIN
POSTMAN=$BUILD/test/security/postman
VICTIM=migr-sec

if [[ $(id -u) != 0 ]]; then
    skip security "needs root (namespaces, users, ptrace)"
    exit 0
fi
if ! id -u "$VICTIM" >/dev/null 2>&1 &&
    ! useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$VICTIM"; then
    fail "test user $VICTIM" "useradd failed"
    exit 0
fi
VU=$(id -u "$VICTIM") VG=$(id -g "$VICTIM") AU=$(id -u nobody) AG=$(id -g nobody)
# A directory both users may write into (the suite's scratch is root's).
chmod 0711 "$SCRATCH"
PUB=$SCRATCH/pub
mkdir -m 1777 "$PUB"
cc -O2 -o "$PUB/counter" "$TOP/test/migrate/counter.c" 2>"$SCRATCH/cc.out" ||
    { fail build-counter "$(tail -n 2 "$SCRATCH/cc.out" | tr '\n' '|')"; exit 0; }
"$POSTMAN" >/dev/null 2>&1 # the libtool wrapper makes its program as root, once
if ! vcluster_up 3; then
    fail vcluster "cannot bring up 3 nodes (see above)"
    exit 0
fi

# as USER NODE CMD...: CMD inside NODE as the victim or the attacker, with
# no supplementary groups (or those of AS_GROUPS, e.g. AS_GROUPS=6).
as() {
    local u g groups=--clear-groups
    case $1 in
    victim) u=$VU g=$VG ;;
    attacker) u=$AU g=$AG ;;
    esac
    shift
    [[ -n ${AS_GROUPS:-} ]] && groups=--groups=$AS_GROUPS
    "$V" exec "$1" setpriv --reuid="$u" --regid="$g" "$groups" -- "${@:2}"
}
JOB=7340033 # [112,1]
OTHER=9437185
# The victim's process: rank 0 of its job, started at n1 by its deputy.
start_victim() {
    rm -f "$PUB/v.pid"
    # its output files are its own: a move reopens them with its rights
    : >"$PUB/v.out" && : >"$PUB/v.err" && chown "$VU:$VG" "$PUB/v.out" "$PUB/v.err"
    ( as victim n1 "$C" run --job $JOB --rank 0 --pidfile "$PUB/v.pid" -- "$@" >"$PUB/v.out" 2>"$PUB/v.err"
      echo $? >"$PUB/v.rc" ) &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $PUB/v.pid ]] && break
        sleep 0.1
    done
    VPID=$(cat "$PUB/v.pid" 2>/dev/null)
    [[ -n $VPID ]]
}
alive_at() { # alive_at NODE: the victim's process still ticks and runs at NODE
    local before after want="$1 running"
    [[ $1 == n1 ]] || want="$1 away" # as its home n1 sees it
    before=$(wc -l <"$PUB/v.out")
    sleep 0.5
    after=$(wc -l <"$PUB/v.out")
    ((after > before)) || { echo "it stopped ticking ($before lines)"; return 1; }
    [[ $("$V" exec n1 "$C" ps | ps_fields "$VPID" NODE STATE) == "$want" ]] ||
        { echo "ps: $("$V" exec n1 "$C" ps | tr '\n' '|')"; return 1; }
}
if ! start_victim "$PUB/counter" 100000 50 0; then
    fail "victim's process" "no pid: $(tr '\n' '|' <"$PUB/v.err")"
    exit 0
fi

# --- the attacker on the victim's process
expect_fail "another user cannot move it (one-line refusal naming uid and pid)" 30 \
    "uid $AU may not move pid $VPID" as attacker n1 "$C" migrate "$VPID" --to n2
expect_fail "another user cannot move it by (job, rank)" 30 \
    "uid $AU may not move pid $VPID" as attacker n1 "$C" migrate $JOB 0 --to n2
expect_fail "another user cannot stop it (SIGSTOP through migrd)" 10 \
    "uid $AU may not send signal 19 to pid $VPID" as attacker n1 "$POSTMAN" signal "$VPID" 19
expect_fail "another user cannot kill it (SIGKILL through migrd)" 10 \
    "uid $AU may not send signal 9 to pid $VPID" as attacker n1 "$POSTMAN" signal "$VPID" 9
expect_fail "another user cannot deregister it" 10 \
    "uid $AU may not deregister pid $VPID" as attacker n1 "$POSTMAN" deregister "$VPID"
run_case "after all that it runs on at n1, and migrd logged who asked" 20 sh -c '
    grep -q "refused uid '"$AU"' .*may not move pid '"$VPID"'" "$1" || { echo "no refusal in the log"; exit 1; }' \
    sh "/run/migr-vcluster$MIGR_VCLUSTER_ID/n1/migrd.log"
run_case "... still running at n1" 10 alive_at n1

case_ps_hidden() {
    local a r
    a=$(as attacker n1 "$C" ps | ps_fields "$VPID" UID JOB RANK MOVES)
    r=$("$V" exec n1 "$C" ps | ps_fields "$VPID" UID JOB RANK MOVES)
    [[ $a == "$VU - - -" ]] || { echo "attacker's ps: $a"; return 1; }
    [[ $r == "$VU [112,1] 0 0" ]] || { echo "root's ps: $r"; return 1; }
    as attacker n1 "$C" ps | grep -Eq "^ *$VPID .* counter$" || { echo "no command"; return 1; }
}
run_case "ps shows another user's process as ps(1) would: pid, user, command; no job, rank, moves" 20 case_ps_hidden

# --- the victim's job: mailboxes and packets
case_no_mailbox() {
    local out
    out=$(as attacker n1 "$POSTMAN" open $JOB 3) && { echo "opened: $out"; return 1; }
    echo "$out"
    grep -q "refused uid $AU (pid [0-9]*): uid $AU may not open mailbox $JOB:3" \
        "/run/migr-vcluster$MIGR_VCLUSTER_ID/n1/migrd.log" || { echo "no refusal in the log"; return 1; }
    [[ $out == *"belongs to another user"* ]]
}
run_case "another user cannot open a mailbox in the victim's job (EPERM, one line in the log)" 20 case_no_mailbox
run_case "the owner can open one in its job" 20 as victim n1 "$POSTMAN" open $JOB 3

# recv_case NAME: the victim's rank 2 at n1 receives for 6 s while the
# attacker sends into it from n1 and n2 and the victim's rank 1 sends 3.
case_injection() {
    rm -f "$PUB/ready"
    as victim n1 "$POSTMAN" recv $JOB 2 6 "$PUB/ready" >"$PUB/recv.out" 2>&1 &
    local rp=$! i
    for ((i = 0; i < 50; i++)); do [[ -e $PUB/ready ]] && break; sleep 0.1; done
    as attacker n1 "$POSTMAN" send $OTHER 0 $JOB 2 5
    as attacker n2 "$POSTMAN" send $OTHER 1 $JOB 2 5
    as victim n1 "$POSTMAN" send $JOB 1 $JOB 2 3
    wait $rp
    cat "$PUB/recv.out"
    [[ $(tail -n 1 "$PUB/recv.out") == "got 3" ]] && ! grep -q "from $OTHER:" "$PUB/recv.out"
}
run_case "another user's packets never reach the job's mailboxes (same node and across nodes); the owner's do" 40 case_injection
case_steal() {
    rm -f "$PUB/ready"
    as attacker n2 "$POSTMAN" recv $JOB 5 6 "$PUB/ready" >"$PUB/steal.out" 2>&1 &
    local rp=$! i
    for ((i = 0; i < 50; i++)); do [[ -e $PUB/ready ]] && break; sleep 0.1; done
    sleep 0.5 # its ANNOUNCE reaches n1
    as victim n1 "$POSTMAN" send $JOB 1 $JOB 5 4
    wait $rp
    cat "$PUB/steal.out"
    [[ $(tail -n 1 "$PUB/steal.out") == "got 0" ]] || return 1
    grep -q "ignored ANNOUNCE of $JOB:5 (uid $AU)" "/run/migr-vcluster$MIGR_VCLUSTER_ID/n1/migrd.log" ||
        { echo "n1 believed the attacker's ANNOUNCE"; return 1; }
}
run_case "a mailbox of the job's address opened by another user on another node receives nothing of the job (its ANNOUNCE ignored)" 40 case_steal

case_status_hidden() {
    rm -f "$PUB/ready"
    as victim n1 "$POSTMAN" recv $JOB 4 4 "$PUB/ready" >/dev/null 2>&1 &
    local rp=$! i a r
    for ((i = 0; i < 50; i++)); do [[ -e $PUB/ready ]] && break; sleep 0.1; done
    a=$(as attacker n1 "$C" status | awk -v u="$VU" '$4 == u')
    r=$("$V" exec n1 "$C" status | awk -v u="$VU" '$4 == u')
    wait $rp
    echo "attacker: $a / root: $r"
    [[ -n $a && $a != *"$JOB"* && $r == *"$JOB"* ]]
}
run_case "status shows another user's mailboxes only by pid and uid" 20 case_status_hidden

# --- test hooks
expect_fail "--inject is refused to users" 20 "uid $VU may not use test hooks" \
    as victim n1 "$C" migrate "$VPID" --to n2 --inject stall
expect_fail "--inject is refused to root when migrd has no test hooks" 20 "test hooks \(--inject\) are off" \
    "$V" exec n1 "$C" migrate "$VPID" --to n2 --inject corrupt
run_case "... and the process was not moved" 10 alive_at n1

# --- the reopen at the destination: the process's own rights, no symlink
case_reopen() { # case_reopen WHAT: what n2 has at the path of the victim's fd 3
    stop_victim
    "$V" exec n2 sh -c 'rm -rf /dev/shm/u /dev/shm/secret; echo root-only >/dev/shm/secret; chmod 600 /dev/shm/secret'
    for n in n1 n2; do "$V" exec $n sh -c "mkdir -p /dev/shm/u && chown $VU:$VG /dev/shm/u && chmod 700 /dev/shm/u"; done
    as victim n1 sh -c 'echo mine >/dev/shm/u/f'
    case $1 in
    symlink) as victim n2 ln -s /dev/shm/secret /dev/shm/u/f ;;
    rootfile) "$V" exec n2 sh -c 'echo root-only >/dev/shm/u/f; chmod 600 /dev/shm/u/f' ;;
    esac
    start_victim sh -c 'exec 3<>/dev/shm/u/f; exec "$0" 100000 50 0' "$PUB/counter" || { echo "no pid: $(tr '\n' '|' <"$PUB/v.err")"; return 1; }
    sleep 0.5
    local out
    out=$(as victim n1 "$C" migrate "$VPID" --to n2 2>&1) && { echo "moved: $out"; return 1; }
    echo "$out"
    case $1 in
    symlink) [[ $out == *"fd 3: /dev/shm/u/f: a symbolic link on the way"* ]] || return 1 ;;
    rootfile) [[ $out == *"fd 3: uid $VU may not open /dev/shm/u/f"* ]] || return 1 ;;
    esac
    alive_at n1
}
stop_victim() { # cases run in subshells: the pid of the last victim is in its file
    VPID=$(cat "$PUB/v.pid" 2>/dev/null) || return 0
    "$V" exec n1 "$POSTMAN" signal "$VPID" 9 >/dev/null 2>&1 || "$V" exec n1 kill -9 "$VPID" 2>/dev/null
    wait_victim_gone
}
wait_victim_gone() {
    local i
    for ((i = 0; i < 50; i++)); do [[ -s $PUB/v.rc ]] && break; sleep 0.1; done
    rm -f "$PUB/v.rc"
}
run_case "a move that would reopen a file through a symlink to a 0600 root file is refused; it runs on at its source" 60 \
    case_reopen symlink
run_case "a move that would reopen a file the process may not open at the destination is refused; it runs on" 60 \
    case_reopen rootfile

# --- the destination checks the vouched credentials against its own user
# database: the user has an account there (n2 gets an /etc/passwd without
# it, bound over the real one in n2's mount namespace only), its uid is the
# same user there (renamed: n2's passwd gives the uid another name), and
# every group the process holds is one of the user's (the victim is not in
# group 6)
case_creds() { # case_creds account|renamed|group
    stop_victim
    if [[ $1 == group ]]; then
        id -nG "$VICTIM" | tr ' ' '\n' | grep -qx "$(getent group 6 | cut -d: -f1)" && { echo "SKIP: $VICTIM is in group 6"; return 0; }
        AS_GROUPS=6 start_victim "$PUB/counter" 100000 50 0
    else
        start_victim "$PUB/counter" 100000 50 0
    fi || { echo "no pid: $(tr '\n' '|' <"$PUB/v.err")"; return 1; }
    sleep 0.3
    local out rc=0
    if [[ $1 != group ]]; then
        if [[ $1 == account ]]; then
            grep -v "^$VICTIM:" /etc/passwd
        else
            sed "s/^$VICTIM:/migr-other:/" /etc/passwd
        fi >"$PUB/passwd.n2"
        "$V" exec n2 mount --bind "$PUB/passwd.n2" /etc/passwd || { echo "cannot bind a passwd on n2"; return 1; }
    fi
    out=$("$V" exec n1 "$C" migrate "$VPID" --to n2 2>&1) || rc=$?
    [[ $1 != group ]] && "$V" exec n2 umount /etc/passwd
    ((rc)) || { echo "moved: $out"; return 1; }
    echo "$out"
    case $1 in
    account) [[ $out == *"uid $VU ($VICTIM on n1) has no account on n2"* ]] || return 1 ;;
    renamed) [[ $out == *"uid $VU is $VICTIM on n1 but migr-other on n2"* ]] || return 1 ;;
    group) [[ $out == *"its supplementary group 6 is not a group of $VICTIM (uid $VU) on n2"* ]] || return 1 ;;
    esac
    alive_at n1
}
run_case "a move into a node where the process's user has no account is refused; it runs on at its source" 60 \
    case_creds account
run_case "a move into a node where the process's uid is another user's is refused; it runs on at its source" 60 \
    case_creds renamed
run_case "a move of a process holding a group its user is not in at the destination is refused; it runs on" 60 \
    case_creds group

# --- the owner can do all of it
case_owner() {
    stop_victim
    start_victim "$PUB/counter" 100000 50 0 || { echo "no pid: $(tr '\n' '|' <"$PUB/v.err")"; return 1; }
    sleep 0.3
    as victim n1 "$POSTMAN" signal "$VPID" 19 || return 1
    sleep 0.3
    [[ $("$V" exec n1 ps -o stat= -p "$VPID") == T* ]] || { echo "not stopped"; return 1; }
    as victim n1 "$POSTMAN" signal "$VPID" 18 || return 1
    as victim n1 "$C" migrate "$VPID" --to n2 || return 1
    alive_at n2 || return 1
    grep -q "move pid $VPID.* n1 -> n2 for uid $VU: ok" "/run/migr-vcluster$MIGR_VCLUSTER_ID/n1/migrd.log" ||
        { echo "no uid in the move log line"; return 1; }
    as victim n1 "$C" migrate $JOB 0 --to n1 || return 1
    alive_at n1 || return 1
    [[ $(as victim n1 "$C" ps | ps_fields "$VPID" JOB MOVES) == "[112,1] 2" ]] || { echo "owner's ps"; return 1; }
    as victim n1 "$POSTMAN" deregister "$VPID" || return 1
    "$V" exec n1 "$C" ps | grep -q "^ *$VPID " && { echo "still registered"; return 1; }
    return 0
}
run_case "the owner can stop, continue, move (uid in the move log), see and deregister its process" 90 case_owner
stop_victim

case_hooks() {
    "$V" migrd-restart n1 -- --test-hooks >/dev/null || return 1
    "$V" migrd-restart n2 -- --test-hooks >/dev/null || return 1
    start_victim "$PUB/counter" 100000 50 0 || { echo "no pid: $(tr '\n' '|' <"$PUB/v.err")"; return 1; }
    sleep 0.5
    if as victim n1 "$C" migrate "$VPID" --to n2 --inject stall; then echo "a user injected"; return 1; fi
    "$V" exec n1 "$C" migrate "$VPID" --to n2 --inject stall || return 1
    alive_at n2 || return 1
    stop_victim
}
run_case "with --test-hooks root may inject (a stalled move succeeds), users still may not" 90 case_hooks
