#!/bin/bash
# test/soak/restart_soak.sh -- a long soak of moves and daemon restarts
# (issue 10, "nothing is lost"): not part of the test command (it runs for
# many minutes); run it as root, alone or beside other work.
#
# usage: test/soak/restart_soak.sh [--moves N] [--restart-every K] [--seed S] [--help]
#
# On three virtual nodes (test/vcluster, cluster MIGR_VCLUSTER_ID, default
# 14) three processes run under `migrctl run`, one at home on each node:
# two print a numbered line every 20 ms (test/migrate/counter.c) and one
# echoes every line of a stream fed into its stdin at ~200 lines/s.  N
# random moves (default 1000 that succeed, within 3 N tries) are asked of
# their homes, each to a node other than where the soak last moved it;
# after every K
# moves that succeeded (default 100), migrd is restarted on the home of the
# process moved last and on one other node, at random.  At the end the
# feed ends, the two counters are stopped through their deputies (SIGTERM),
# and the soak checks that:
#   - every process ended with the status it should (143, 143, 5): none lost;
#   - every output is complete: lines 1..n, each once, in order;
#   - the echo got every line that was fed, once, in order;
#   - no test process is left on any node and no migrd lists one (no orphan).
# It prints the moves that succeeded, the refusals by reason, the restarts,
# and one line "soak: OK" or "soak: FAILED: why"; exit 0 only if OK.
# The scratch directory (outputs, move log, the nodes' migrd logs) is kept
# when the soak fails.
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-14}
MOVES=1000 EVERY=100 SEED=$$

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
while (($#)); do
    case $1 in
    --moves) MOVES=${2:?--moves needs a number}; shift 2 ;;
    --restart-every) EVERY=${2:?--restart-every needs a number}; shift 2 ;;
    --seed) SEED=${2:?--seed needs a number}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "restart_soak: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for v in "$MOVES" "$EVERY" "$SEED"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "restart_soak: '$v' is not a number (try --help)" >&2; exit 2; }
done
((EVERY > 0)) || { echo "restart_soak: --restart-every must be at least 1" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "restart_soak: run it as root (namespaces, ptrace)" >&2; exit 2; }

V=$VCLUSTER
C=$MIGRCTL_BIN
NODES=(n1 n2 n3)
verdict() {
    if [[ $1 == OK ]]; then
        echo "soak: OK"
        exit 0
    fi
    echo "soak: FAILED: $1"
    export MIGR_TEST_KEEP=1
    for d in /run/migr-vcluster"$MIGR_VCLUSTER_ID"/n*/; do cp "$d/migrd.log" "$SCRATCH/$(basename "$d").migrd.log"; done
    exit 1
}

cc -O2 -o "$SCRATCH/counter" "$TOP/test/migrate/counter.c" || verdict "cannot build test/migrate/counter.c"
vcluster_up 3 || verdict "cannot bring up 3 virtual nodes"
vc_pids_apart || verdict "cannot set the nodes' pid counters apart"

# Process i is at home on NODES[i]: 0 and 1 count, 2 echoes its stdin.
FEEDING=$SCRATCH/feeding
touch "$FEEDING"
start_proc() {
    local i=$1 home=${NODES[$1]}
    if ((i < 2)); then
        # (the subshell's own notices, "Terminated", go to .sh)
        ( "$V" exec "$home" "$C" run --pidfile "$SCRATCH/p$i.pid" -- "$SCRATCH/counter" 1000000 20 9 \
            >"$SCRATCH/p$i.out" 2>"$SCRATCH/p$i.err"
          echo $? >"$SCRATCH/p$i.rc" ) 2>"$SCRATCH/p$i.sh" &
    else
        ( ( n=0
            while [[ -e $FEEDING ]]; do
                n=$((n + 1))
                echo "msg $n"
                sleep 0.005
            done
            echo "$n" >"$SCRATCH/fed" ) |
            "$V" exec "$home" "$C" run --pidfile "$SCRATCH/p$i.pid" -- "$SCRATCH/counter" echo 5 \
                >"$SCRATCH/p$i.out" 2>"$SCRATCH/p$i.err"
          echo "${PIPESTATUS[1]}" >"$SCRATCH/p$i.rc" ) &
    fi
}
for i in 0 1 2; do start_proc $i; done
for i in 0 1 2; do
    for ((t = 0; t < 100; t++)); do [[ -s $SCRATCH/p$i.pid ]] && break; sleep 0.1; done
    [[ -s $SCRATCH/p$i.pid ]] || verdict "process $i did not start: $(cat "$SCRATCH/p$i.err")"
    PIDS[i]=$(cat "$SCRATCH/p$i.pid")
done

RANDOM=$SEED
moved=0 tried=0 restarts=0 since=0
declare -A refused=()
start=$SECONDS
echo "soak: seed $SEED, $MOVES moves, migrd restarted on two nodes every $EVERY"
# where the soak last moved each process ("": not known after a restart,
# which moves a stopping node's guests away)
AT=(n1 n2 n3)
while ((moved < MOVES && tried < 3 * MOVES)); do
    i=$((RANDOM % 3)) to=${NODES[RANDOM % 3]}
    [[ $to == "${AT[i]}" ]] && to=${NODES[(RANDOM % 2 + 1 + ${AT[i]#n} - 1) % 3]}
    tried=$((tried + 1))
    out=$(with_timeout 60 "$V" exec "${NODES[i]}" "$C" migrate "${PIDS[i]}" --to "$to" 2>&1)
    rc=$?
    echo "$(date +%T.%N | cut -c1-12) p$i to $to: rc $rc: $out" >>"$SCRATCH/moves.log"
    for ((k = 0; k < 3; k++)); do
        [[ -s $SCRATCH/p$k.rc ]] && verdict "process $k ended during the soak (status $(cat "$SCRATCH/p$k.rc"), move $tried): $(tail -n 2 "$SCRATCH/p$k.err" | tr '\n' '|')"
    done
    if ((rc == 0)); then
        moved=$((moved + 1)) since=$((since + 1)) AT[i]=$to
    else
        # the reason without the pid and nodes: "pid 41 already runs on n2" -> "already runs on"
        why=$(sed -n 's/^migrctl: migrd refused: //p;s/^migrctl: //p' <<<"$out" | head -n 1 |
            sed 's/pid [0-9]*//g;s/\bn[0-9]\b//g;s/  */ /g' | cut -c1-60)
        refused[${why:-rc $rc}]=$((${refused[${why:-rc $rc}]:-0} + 1))
    fi
    if ((since >= EVERY)); then
        since=0
        other=${NODES[RANDOM % 3]}
        [[ $other == "${NODES[i]}" ]] && other=${NODES[(i + 1 + RANDOM % 2) % 3]}
        for n in "${NODES[i]}" "$other"; do
            with_timeout 60 "$V" migrd-restart "$n" >>"$SCRATCH/restarts.log" 2>&1 ||
                verdict "migrd on $n did not restart (see restarts.log)"
            restarts=$((restarts + 1))
        done
        AT=("" "" "")
        echo "soak: $moved moves of $tried tries, $restarts restarts ($((SECONDS - start)) s)"
    fi
done

# The end: the feed ends (the echo ends 5 at EOF), the counters are told to stop.
rm -f "$FEEDING"
for i in 0 1; do
    home=${NODES[i]}
    stub=$("$V" exec "$home" sh -c "for p in /proc/[0-9]*; do tr '\\0' ' ' <\$p/cmdline 2>/dev/null | grep -q -- '--pidfile $SCRATCH/p$i.pid' && echo \${p#/proc/}; done" | head -n 1)
    [[ -n $stub ]] || verdict "the deputy of process $i is gone from $home"
    "$V" exec "$home" kill -TERM "$stub"
done
want=(143 143 5)
for i in 0 1 2; do
    for ((t = 0; t < 600; t++)); do [[ -s $SCRATCH/p$i.rc ]] && break; sleep 0.1; done
    rc=$(cat "$SCRATCH/p$i.rc" 2>/dev/null || echo "still running after 60 s")
    [[ $rc == "${want[i]}" ]] || verdict "process $i ended with status $rc, not ${want[i]}: $(tail -n 2 "$SCRATCH/p$i.err" | tr '\n' '|')"
done
for i in 0 1; do
    n=$(wc -l <"$SCRATCH/p$i.out")
    cmp -s "$SCRATCH/p$i.out" <(seq 1 "$n" | sed 's/^/tick /') ||
        verdict "process $i: its $n lines are not tick 1..$n (first difference: $(cmp "$SCRATCH/p$i.out" <(seq 1 "$n" | sed 's/^/tick /') 2>&1 | head -n 1))"
    lines[i]=$n
done
fed=$(cat "$SCRATCH/fed" 2>/dev/null) || verdict "the feed did not say how many lines it wrote"
cmp -s "$SCRATCH/p2.out" <(seq 1 "$fed" | sed 's/^/got: msg /') ||
    verdict "the echo did not get msg 1..$fed once each in order ($(wc -l <"$SCRATCH/p2.out") lines)"
for n in "${NODES[@]}"; do
    left=$("$V" exec "$n" pgrep -f "$SCRATCH/counter" | tr '\n' ' ')
    [[ -z $left ]] || verdict "left running on $n: pids $left (orphans)"
    listed=$("$V" exec "$n" "$C" ps 2>&1 | grep -v '^ *PID\|no migratable process' | head -n 3 | tr '\n' '|')
    [[ -z $listed ]] || verdict "migrd on $n still lists: $listed"
done
echo "soak: $moved moves of $tried tries, $restarts migrd restarts, $((SECONDS - start)) s"
for why in "${!refused[@]}"; do echo "  not moved ${refused[$why]} times: $why"; done
echo "soak: outputs ${lines[0]} and ${lines[1]} lines, echo $fed lines: all complete, in order, once; 0 lost, 0 orphans"
verdict OK
