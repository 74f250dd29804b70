#!/usr/bin/env bash
# The authenticated cluster (issue 8, part 3): the cluster key file and its
# checks, `migrctl keygen`, and peers without the key (test/auth/intruder,
# or a real migrd with a wrong key) against the link port and the
# migration port of a virtual cluster: no injected packet, no taken-over,
# dropped or looping link, no offer, no forwarding HELLO, no forged
# ANNOUNCE; a key holder's forwarding HELLO only for its own node.
# AUTH_SUITE_INSECURE=1 runs the attacks against daemons started with
# --insecure: then the attack cases must FAIL (the checks are what stops them).
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-6}
# a scratch directory of its own name (lib_cleanup removes it)
rmdir "$SCRATCH" && SCRATCH=$(mktemp -d /tmp/migr-authsuite.XXXXXX) || exit 1
INTRUDER=$BUILD/test/auth/intruder
PINGPONG=$BUILD/test/dicom/dicom_pingpong
NET=198.18.$MIGR_VCLUSTER_ID
STATE=/run/migr-vcluster$MIGR_VCLUSTER_ID

# --- the key file ---
K=$SCRATCH/cluster.key
case_keygen() {
    "$MIGRCTL_BIN" keygen "$K" || return 1
    [[ $(stat -c '%a %s' "$K") == "600 32" ]] || { echo "mode and size: $(stat -c '%a %s' "$K")"; return 1; }
    cp "$K" "$SCRATCH/key.before"
    if "$MIGRCTL_BIN" keygen "$K" 2>"$SCRATCH/keygen.err"; then echo "overwrote the key"; return 1; fi
    grep -q "never overwritten" "$SCRATCH/keygen.err" || { cat "$SCRATCH/keygen.err"; return 1; }
    cmp -s "$K" "$SCRATCH/key.before" || { echo "the key changed"; return 1; }
}
run_case "migrctl keygen makes a 0600 key of 32 bytes and refuses to overwrite it" 10 case_keygen
KPORT=$((30000 + RANDOM % 20000))
map() { printf 'cluster c\nnode a 127.0.0.1:%d\nnode b 127.0.0.1:%d\n%s\n' $KPORT $((KPORT + 2)) "$1" >"$SCRATCH/k.conf"; }
try_migrd() { "$MIGRD_BIN" --foreground --config "$SCRATCH/k.conf" --node a --socket "$SCRATCH/k.sock" "$@"; }
cp "$K" "$SCRATCH/open.key" && chmod 644 "$SCRATCH/open.key"
map "key $SCRATCH/open.key"
expect_fail "migrd refuses a key file of mode 0644" 10 "mode 0644 lets group or others read it" try_migrd
head -c 16 /dev/urandom >"$SCRATCH/short.key" && chmod 600 "$SCRATCH/short.key"
map "key $SCRATCH/short.key"
expect_fail "migrd refuses a key file of the wrong size" 10 "a key has exactly 32" try_migrd
map "key $SCRATCH/missing.key"
expect_fail "migrd refuses a missing key file" 10 "missing.key: No such file" try_migrd
map ""
expect_fail "migrd refuses a map of two nodes without a key (unless --insecure)" 10 "names no cluster key" try_migrd
map ""
if start_migrd "$SCRATCH/k.sock" "$SCRATCH/k.log" --config "$SCRATCH/k.conf" --node a --insecure 2>"$SCRATCH/k.err" &&
    grep -q "WARNING: --insecure" "$SCRATCH/k.err" && grep -q "INSECURE" "$SCRATCH/k.log"; then
    pass "migrd --insecure starts without a key, warning loudly"
else
    fail "migrd --insecure starts without a key, warning loudly" "$(tail -n 2 "$SCRATCH/k.err" "$SCRATCH/k.log" | tr '\n' '|')"
fi
kill "$MIGRD_PID" && wait "$MIGRD_PID"

# --- peers without the key ---
if ! vcluster_up 3; then
    fail "virtual cluster of 3 nodes" "test/vcluster up failed"
    exit 1
fi
VX() { "$VCLUSTER" exec "$@"; }
if [[ ${AUTH_SUITE_INSECURE:-} == 1 ]]; then
    for n in n1 n2 n3; do "$VCLUSTER" migrd-restart "$n" -- --insecure >/dev/null; done
    sleep 1
fi
grep -q "peers authenticated with the cluster key" "$STATE/n1/migrd.log" ||
    [[ ${AUTH_SUITE_INSECURE:-} == 1 ]] || fail "virtual cluster authenticated" "n1's migrd does not say so"
WRONG=$SCRATCH/wrong.key
head -c 32 /dev/urandom >"$WRONG" && chmod 600 "$WRONG"
link_events() { grep -hE "link to n[0-9]+ .* is (up|down)" "$STATE"/n*/migrd.log | wc -l; }
for i in $(seq 50); do [[ $(link_events) -ge 6 ]] && break; sleep 0.1; done
EVENTS=$(link_events)

# refused MSG NODE INTRUDER-ARGS...: PASS if the intruder run from NODE is refused
refused() {
    local name=$1 node=$2
    shift 2
    run_case "$name" 15 VX "$node" "$INTRUDER" "$@"
}
# rank 1 of job 31 on n2 waits for rank 0's first packet; meanwhile packets
# are forged for it, claiming to come from n1, from n3's and from n1's address
VX n2 "$PINGPONG" 31 1 0 200 512 >"$SCRATCH/pp31.out" 2>&1 &
at_exit "kill $!"
sleep 0.5
refused "spoofed link HELLO (no key) claiming n1, from n3, with DATA: refused" n3 \
    link "$NET.2" 7040 n1 0 --data 31 1
refused "link HELLO claiming n1 from n1's address, wrong key, with DATA: refused" n1 \
    link "$NET.2" 7040 n1 0 --key "$WRONG" --data 31 1
refused "link HELLO without handshake claiming n1, from n1's address, with DATA: refused" n1 \
    link "$NET.2" 7040 n1 0 --plain --data 31 1
# exchanged JOB OUT: rank 0 of JOB on n1 exchanges with the rank 1 on n2
# that writes OUT: both must find every packet intact
exchanged() {
    local i
    VX n1 "$PINGPONG" "$1" 0 1 200 512 || return 1
    for i in $(seq 100); do grep -q "exchanges ok" "$2" && return 0; sleep 0.1; done
    cat "$2"
    return 1
}
case_no_injection() { exchanged 31 "$SCRATCH/pp31.out"; }
run_case "no forged packet reached the mailbox: the real exchange is intact" 30 case_no_injection

# forged ANNOUNCE: n1 is told that rank 1 of job 32 (on n2) is on n3
VX n2 "$PINGPONG" 32 1 0 200 512 >"$SCRATCH/pp32.out" 2>&1 &
at_exit "kill $!"
sleep 0.5
refused "forged ANNOUNCE (no key) as n3: refused" n3 link "$NET.1" 7040 n3 2 --announce 32 1
refused "forged ANNOUNCE with a wrong key as n3: refused" n3 link "$NET.1" 7040 n3 2 --key "$WRONG" --announce 32 1
refused "forged ANNOUNCE without handshake as n3: refused" n3 link "$NET.1" 7040 n3 2 --plain --announce 32 1
case_announce_ignored() { exchanged 32 "$SCRATCH/pp32.out"; }
run_case "the forged ANNOUNCE was ignored: packets for job 32 arrive" 30 case_announce_ignored

case_links_steady() {
    sleep 2 # a reconnect loop would show here
    local now
    now=$(link_events)
    ((now == EVENTS)) || { echo "link up/down events: $EVENTS before the attacks, $now after"; return 1; }
    VX n2 "$MIGRCTL_BIN" status | grep -E '^n1 .* up ' >/dev/null || { echo "n2: link to n1 not up"; return 1; }
}
run_case "the attacks neither dropped, took over nor looped a real link" 10 case_links_steady

# --- bounded ports: from n3 (an address of the map), 40 connections to
# each of n2's ports that never start their handshake.  Past 32 at once
# they are refused at accept; after ADMIT_HANDSHAKE_MS (10 s) the rest are
# dropped; meanwhile and after, the real links carry packets.
case_silent_flood() {
    local port log=$STATE/n2/migrd.log
    VX n3 bash -c "for p in 7040 7041; do for i in \$(seq 40); do exec {fd}<>/dev/tcp/$NET.2/\$p || exit 1; done; done
                   sleep 14" &
    local flood=$!
    for port in "link port" "migration port"; do
        with_timeout 10 sh -c "until grep -q '$port: connection from $NET.3[:0-9]* refused: 32 connections already wait' '$log'; do sleep 0.2; done" ||
            { echo "n2 did not refuse the 33rd silent connection to its $port"; kill $flood; return 1; }
    done
    VX n2 "$PINGPONG" 33 1 0 200 512 >"$SCRATCH/pp33.out" 2>&1 &
    exchanged 33 "$SCRATCH/pp33.out" || { echo "no exchange during the flood"; kill $flood; return 1; }
    for port in "link port" "migration port"; do
        with_timeout 20 sh -c "until grep -q '$port: connection from $NET.3[:0-9]* (fd [0-9]*): no handshake.* within 10000 ms' '$log'; do sleep 0.2; done" ||
            { echo "n2 kept the silent connections to its $port"; kill $flood; return 1; }
    done
    wait $flood
    VX n2 "$PINGPONG" 34 1 0 200 512 >"$SCRATCH/pp34.out" 2>&1 &
    exchanged 34 "$SCRATCH/pp34.out" || { echo "no exchange after the flood"; return 1; }
}
run_case "silent connections on the link and migration ports: at most 32 wait, 10 s each" 60 case_silent_flood

# --- the migration port ---
refused "offer (no key) from n3: refused" n3 offer "$NET.2" 7041 n3 2
refused "offer with a wrong key from n3: refused" n3 offer "$NET.2" 7041 n3 2 --key "$WRONG"
refused "offer without handshake from n3: refused" n3 offer "$NET.2" 7041 n3 2 --plain
case_stranger_addr() {
    "$INTRUDER" offer "$NET.2" 7041 n3 2 --key "$WRONG" || return 1
    grep -q "connection from $NET.254, which is no node's address" "$STATE/n2/migrd.log"
}
run_case "offer from an address not in the map: refused at accept" 15 case_stranger_addr

# a process at home on n1, moved to n2: its home forwards its descriptors
cc -O2 -o "$SCRATCH/touch" "$TOP/test/migrate/touch.c" || fail "build touch" "cc failed"
( exec "$VCLUSTER" exec n1 "$MIGRCTL_BIN" run --pidfile "$SCRATCH/pid" -- "$SCRATCH/touch" 4 120 \
    >"$SCRATCH/touch.out" 2>&1 ) &
RUN=$!
at_exit "kill $RUN"
for i in $(seq 100); do grep -q '^ready' "$SCRATCH/touch.out" 2>/dev/null && break; sleep 0.1; done
PID=$(cat "$SCRATCH/pid" 2>/dev/null)
if [[ -n $PID ]] && VX n1 "$MIGRCTL_BIN" migrate "$PID" --to n2 >"$SCRATCH/move.out" 2>&1; then
    refused "forwarding HELLO (no key) for the moved pid, from n3: refused" n3 fwd "$NET.1" 7041 n3 2 "$PID"
    refused "forwarding HELLO with a wrong key, from n3: refused" n3 fwd "$NET.1" 7041 n3 2 "$PID" --key "$WRONG"
    refused "forwarding HELLO without handshake, from n3: refused" n3 fwd "$NET.1" 7041 n3 2 "$PID" --plain
    refused "key holder n3's forwarding HELLO naming n2 (where it runs): refused" n3 \
        fwd "$NET.1" 7041 n3 2 "$PID" --key "$STATE/cluster.key" --fwd-node 1
    run_case "after the forged forwarding HELLOs the process moves home (forwarding to itself)" 60 \
        VX n1 "$MIGRCTL_BIN" migrate "$PID" --to n1
else
    fail "move a process n1 -> n2 (for the forwarding cases)" "$(tr '\n' '|' <"$SCRATCH/move.out" 2>/dev/null)"
fi

# --- a real migrd with a wrong key: no link, no move either way ---
sed "s|^key .*|key $WRONG|" "$STATE/cluster.conf" >"$SCRATCH/wrong.conf"
"$VCLUSTER" migrd-restart n3 -- --config "$SCRATCH/wrong.conf" >/dev/null 2>&1
case_wrong_key_daemon() {
    local i
    for i in $(seq 50); do
        grep -q "n3 failed to prove it holds the cluster key" "$STATE/n1/migrd.log" && break
        sleep 0.1
    done
    grep -q "n3 failed to prove it holds the cluster key" "$STATE/n1/migrd.log" || { echo "n1 does not refuse n3"; return 1; }
    VX n1 "$MIGRCTL_BIN" status | grep -E '^n3 .* up ' && { echo "n1: link to n3 up"; return 1; }
    return 0
}
run_case "a migrd with a wrong key gets no link" 15 case_wrong_key_daemon
expect_fail "no move into the node with a wrong key" 30 "failed to prove it holds the cluster key|refused|closed|reset" \
    VX n1 "$MIGRCTL_BIN" migrate "$PID" --to n3
