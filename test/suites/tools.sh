#!/usr/bin/env bash
# The administrator's view of the installed programs, without a virtual
# cluster: for migrd, migrctl and migr-ckpt, --help, --version, every
# subcommand's --help and a bad option (exit status and first line; an
# error is one line on stderr, nothing on stdout); the test hooks out of
# the help; `make -n install` lists the man pages and the bash completions;
# every man page renders without a warning (groff -ww), SKIP without groff;
# `migrctl check` (its lines, exit status and JSON, with a good map, a map
# without this node, a bad key, a taken port, as a user); with a private
# one-node migrd (root only): status, ps and log as tables and --json
# (parsed by python3, "schema" in every object, a command name with quotes,
# a newline and bytes that are not UTF-8), owner filtering of ps and log.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

VERSION=$(sed -n 's/^PACKAGE_VERSION = //p' "$BUILD/Makefile" 2>/dev/null)
BUGREPORT=$(sed -n 's/^PACKAGE_BUGREPORT = //p' "$BUILD/Makefile" 2>/dev/null)
MIGR_CKPT_BIN=$BUILD/tools/migr-ckpt
declare -A BIN=([migrd]=$MIGRD_BIN [migrctl]=$MIGRCTL_BIN [migr-ckpt]=$MIGR_CKPT_BIN)
declare -A SUBS=([migrd]="" [migrctl]="status ps log check run migrate keygen help" [migr-ckpt]="dump restore reincarnate info help")
MANS=(migrd.8 migrctl.1 migr-ckpt.1 migr-cluster.conf.5)

# expect NAME STATUS FIRST-LINE-REGEX STREAM PROG ARGS...: PROG ARGS exits
# with STATUS and the first line of STREAM (out or err) matches; an error
# (STREAM err) must be exactly one line, with nothing on stdout.
expect() {
    local name=$1 want=$2 pat=$3 stream=$4 prog=$5 rc first lines
    shift 5
    [[ -z ${MIGR_TEST_ONLY:-} || $name =~ $MIGR_TEST_ONLY ]] || return 0
    timeout 10 "${BIN[$prog]}" "$@" >"$SCRATCH/out" 2>"$SCRATCH/err" </dev/null
    rc=$?
    first=$(head -n 1 "$SCRATCH/$stream")
    lines=$(wc -l <"$SCRATCH/$stream")
    if ((rc != want)); then
        fail "$name" "exit $rc, not $want; first line: $(head -n 1 "$SCRATCH/err" "$SCRATCH/out" | tr '\n' '|')"
    elif ! [[ $first =~ $pat ]]; then
        fail "$name" "first line of std$stream is '$first', not /$pat/"
    elif [[ $stream == err ]] && ((lines != 1)) || [[ $stream == err && -s $SCRATCH/out ]]; then
        fail "$name" "$lines lines on stderr (and $(wc -l <"$SCRATCH/out") on stdout), not one: $(tr '\n' '|' <"$SCRATCH/err")"
    elif [[ $stream == out && -s $SCRATCH/err ]]; then
        fail "$name" "wrote to stderr: $(head -n 1 "$SCRATCH/err")"
    else
        pass "$name"
    fi
}

# a regular expression matching the string s literally
lit() { sed 's/[][\.|$(){}?+*^]/\\&/g' <<<"$1"; }

for p in migrd migrctl migr-ckpt; do
    if [[ ! -x ${BIN[$p]} ]]; then
        fail "tools: $p" "not built (${BIN[$p]})"
        continue
    fi
    expect "$p --help" 0 "^Usage: $p " out "$p" --help
    expect "$p -h" 0 "^Usage: $p " out "$p" -h
    expect "$p --version" 0 "^$(lit "$p (migr) $VERSION")\$" out "$p" --version
    if [[ -z ${MIGR_TEST_ONLY:-} || "$p --version" =~ $MIGR_TEST_ONLY ]]; then
        line2=$(sed -n 2p "$SCRATCH/out")
        [[ $line2 =~ ^protocols:\ [a-z].*\ [0-9]+$ ]] && pass "$p --version: then the protocol versions" ||
            fail "$p --version: then the protocol versions" "second line '$line2'"
        rest=$(sed -n '3,$p' "$SCRATCH/out" | tr '\n' '|')
        [[ $rest == "Copyright (c) 2026 the migr developers; the 3-clause BSD licence (LICENSE)|Report bugs to <$BUGREPORT>|" ]] &&
            pass "$p --version: then the licence and AC_INIT's address" ||
            fail "$p --version: then the licence and AC_INIT's address <$BUGREPORT>" "lines 3-: '$rest'"
    fi
    expect "$p --bogus" 2 "^$(lit "$p: unknown option '--bogus' (try '$p --help')")\$" err "$p" --bogus
    expect "$p -Z" 2 "^$(lit "$p: unknown option '-Z' (try '$p --help')")\$" err "$p" -Z
    # the commands --help lists are exactly those tested here
    if [[ -n ${SUBS[$p]} ]]; then
        listed=$("${BIN[$p]}" --help | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {print $1}' | xargs)
        [[ $listed == "${SUBS[$p]}" ]] && pass "$p --help lists its commands" ||
            fail "$p --help lists its commands" "'$listed', this suite knows '${SUBS[$p]}'"
        expect "$p NOSUCH" 2 "^$(lit "$p: unknown command 'nosuch' (try '$p --help')")\$" err "$p" nosuch
        expect "$p (no command)" 2 "^$p: which command\\?" err "$p"
    fi
    for s in ${SUBS[$p]}; do
        expect "$p $s --help" 0 "^Usage: $p .*\\b$s\\b" out "$p" "$s" --help
        expect "$p help $s" 0 "^Usage: $p .*\\b$s\\b" out "$p" help "$s"
        expect "$p $s --bogus" 2 "^$(lit "$p: unknown option '--bogus' (try '$p $s --help')")\$" err "$p" "$s" --bogus
    done
done

# Bad values and missing arguments: one line, naming the option, exit 2.
expect "migrd --poll-us x" 2 "^migrd: --poll-us: 'x' is not a time.*\\(try 'migrd --help'\\)\$" err migrd --poll-us x
expect "migrd --poll-cpu 0" 2 "^$(lit "migrd: --poll-cpu: '0' is not a percentage from 1 to 100 (try 'migrd --help')")\$" \
    err migrd --poll-cpu 0
expect "migrd --poll-cpu 101" 2 "^migrd: --poll-cpu: '101' is not a percentage" err migrd --poll-cpu 101
expect "migrd --max-ring 3M" 2 "^migrd: --max-ring: '3M' is not a power of two" err migrd --max-ring 3M
expect "migrd --log-level (no argument)" 2 "^$(lit "migrd: option '--log-level' needs an argument (try 'migrd --help')")\$" \
    err migrd --log-level
expect "migrd --foreground=1" 2 "^$(lit "migrd: option '--foreground' takes no argument")" err migrd --foreground=1
expect "migrd extra argument" 2 "^migrd: unexpected argument 'extra'" err migrd extra
expect "migrctl migrate --to (no argument)" 2 \
    "^$(lit "migrctl: option '--to' needs an argument (try 'migrctl migrate --help')")\$" err migrctl migrate 1234 --to
expect "migrctl migrate: not a pid" 2 "^migrctl migrate: 'x1' is not a pid" err migrctl migrate x1 --to n2
expect "migrctl migrate: no --to" 2 "^migrctl migrate: where to\\?" err migrctl migrate 1234
expect "migrctl run: no command" 2 "^migrctl run: which command\\?" err migrctl run --no-migrate
expect "migrctl run --job without --rank" 2 "^migrctl run: --job and --rank go together" err migrctl run --job 1 -- true
expect "migrctl status: no arguments" 2 "^migrctl status: takes no arguments" err migrctl status extra
expect "migrctl log: no arguments" 2 "^migrctl log: takes no arguments" err migrctl log --json extra
expect "migrctl ps --json=1" 2 "^$(lit "migrctl: option '--json' takes no argument (try 'migrctl ps --help')")\$" \
    err migrctl ps --json=1
expect "migrctl check --config (no argument)" 2 \
    "^$(lit "migrctl: option '--config' needs an argument (try 'migrctl check --help')")\$" err migrctl check --config
expect "migrctl check: no arguments" 2 "^migrctl check: takes no arguments, got 'x'" err migrctl check x
expect "migr-ckpt restore --wait-pid x" 2 "^migr-ckpt restore: --wait-pid: 'x' is not a time" err migr-ckpt restore --wait-pid x -i -
expect "migr-ckpt dump: no -o" 2 "^migr-ckpt dump: need -o IMG" err migr-ckpt dump 1234
expect "migr-ckpt dump: not a pid" 2 "^migr-ckpt dump: 'x' is not a pid" err migr-ckpt dump x -o /dev/null
expect "migr-ckpt --kill is dump's, not reincarnate's" 2 \
    "^$(lit "migr-ckpt: unknown option '--kill' (try 'migr-ckpt reincarnate --help')")\$" err migr-ckpt reincarnate --kill 1234

# The test hooks: accepted (the value is checked), never in the user help.
expect "migrctl migrate --inject is accepted" 2 "^migrctl migrate: --inject: 'bogus' is not corrupt or stall" \
    err migrctl migrate 1234 --to n2 --inject bogus
hooks=$( { "$MIGRD_BIN" --help; "$MIGRCTL_BIN" --help; "$MIGRCTL_BIN" migrate --help; } 2>&1 | grep -Ec -- '--inject|--test-hooks|test hook')
((hooks == 0)) && pass "test hooks (--inject, --test-hooks) not in the user help" ||
    fail "test hooks (--inject, --test-hooks) not in the user help" "$hooks lines name them"

# make -n install puts the four man pages in place.
case_install_lists_mans() {
    local out m
    out=$(make -n -C "$BUILD" install DESTDIR="$SCRATCH/dest" 2>&1) || { echo "$out" | tail -n 3; return 1; }
    for m in "${MANS[@]}"; do
        # automake's install-man: the list of pages, then each section's directory
        grep -q "man/$m\\b" <<<"$out" || { echo "make -n install does not list man/$m"; return 1; }
        grep -q "/man/man${m##*.}" <<<"$out" || { echo "make -n install makes no man${m##*.} for $m"; return 1; }
    done
}
run_case "make -n install lists the man pages ${MANS[*]}" 60 case_install_lists_mans

case_install_lists_completions() {
    local out p
    out=$(make -n -C "$BUILD" install DESTDIR="$SCRATCH/dest" 2>&1) || { echo "$out" | tail -n 3; return 1; }
    for p in migrctl migrd migr-ckpt; do
        grep -q "contrib/bash-completion/$p\b" <<<"$out" || { echo "make -n install does not list the completion of $p"; return 1; }
    done
    grep -q "bash-completion/completions" <<<"$out" || { echo "not into a bash-completion/completions directory"; return 1; }
}
run_case "make -n install puts the bash completions of migrctl, migrd, migr-ckpt in place" 60 case_install_lists_completions

# complete WORD...: what the bash completion of migr offers for the command
# line WORD... (the last word is the one completed), blank-separated, sorted.
complete_words() {
    bash -c 'source "$1/contrib/bash-completion/$2" || exit 1
        shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        f=$(complete -p "$1" | awk "{print \$3}")
        "$f"
        printf "%s\n" "${COMPREPLY[@]}" | sort -u | xargs' sh "$TOP" "$@"
}
PATH=$(dirname "$MIGRCTL_BIN"):$(dirname "$MIGRD_BIN"):$PATH
case_completion() {
    local p s got
    for p in migrd migrctl migr-ckpt; do
        bash -n "$TOP/contrib/bash-completion/$p" || { echo "$p: syntax"; return 1; }
        [[ -n ${SUBS[$p]} ]] || continue
        got=$(complete_words "$p" "")
        [[ $got == "$(xargs -n 1 <<<"${SUBS[$p]}" | sort | xargs)" ]] || { echo "$p: commands '$got'"; return 1; }
    done
    for s in status ps log check; do
        [[ " $(complete_words migrctl "$s" --) " == *" --json "* ]] || { echo "migrctl $s -- offers no --json"; return 1; }
    done
    got=$(complete_words migrctl --socket /x migrate 1 --t) && [[ $got == --to ]] || { echo "migrate --t: '$got'"; return 1; }
    got=$(complete_words migrd --log-level d) && [[ $got == debug ]] || { echo "migrd --log-level d: '$got'"; return 1; }
    got=$(complete_words migr-ckpt -v dump --k) && [[ $got == --kill ]] || { echo "migr-ckpt dump --k: '$got'"; return 1; }
    got=$(complete_words migrctl migrate 1 --inj) && [[ -z $got ]] || { echo "a test hook completed: '$got'"; return 1; }
    got=$(complete_words migrctl run --pidfile f ech) && [[ " $got " == *" echo "* ]] || { echo "run CMD: '$got'"; return 1; }
}
run_case "bash completion: commands and options from each program's --help, no test hooks" 60 case_completion

# Every man page (made by configure from man/*.in) renders without a
# warning, with migr's version and AC_INIT's address.
for m in "${MANS[@]}"; do
    f=$BUILD/man/$m
    if [[ ! -f $f ]]; then
        fail "man page $m" "missing ($f)"
    elif ! command -v groff >/dev/null; then
        skip "man page $m renders without warnings" "no groff (apt-get install groff)"
    else
        w=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$f" 2>&1)
        [[ -z $w ]] && pass "man page $m renders without warnings" ||
            fail "man page $m renders without warnings" "$(head -n 2 <<<"$w" | tr '\n' '|')"
        if command -v man >/dev/null; then
            t=$(MANWIDTH=80 man -l "$f" 2>&1 | col -b 2>/dev/null | head -n 1)
            name=${m%.*}
            [[ $t == "${name^^}(${m##*.})"* ]] && pass "man -l $m" || fail "man -l $m" "first line '$t'"
        fi
        if grep -q "^\\.TH .* \"migr $VERSION\"" "$f" && grep -qx "\\.MT $BUGREPORT" "$f"; then
            pass "man page $m: migr $VERSION, reporting bugs to <$BUGREPORT>"
        else
            fail "man page $m: migr $VERSION, reporting bugs to <$BUGREPORT>" "$(grep -E '^\.(TH|MT)' "$f" | tr '\n' '|')"
        fi
    fi
done

# json_ok NAME ARGS... -- PYTHON: migrctl ARGS --json (as ${AS[@]}, if set)
# parses (python3 -m json.tool), "schema" 1 in every object, and PYTHON
# holds (doc: the document, rc: the exit status, pid: $WPID, WEIRD: its
# command name as JSON gives it back).
json_ok() {
    local name=$1 args=() py rc
    shift
    while [[ $1 != -- ]]; do args+=("$1"); shift; done
    py=$2
    [[ -z ${MIGR_TEST_ONLY:-} || $name =~ $MIGR_TEST_ONLY ]] || return 0
    timeout 60 "${AS[@]}" "$MIGRCTL_BIN" "${args[@]}" --json >"$SCRATCH/j.out" 2>"$SCRATCH/j.err" </dev/null
    rc=$?
    if ! python3 -m json.tool <"$SCRATCH/j.out" >/dev/null 2>"$SCRATCH/j.py"; then
        fail "$name" "not JSON: $(head -c 300 "$SCRATCH/j.py" "$SCRATCH/j.err" | tr '\n' '|')"
        return
    fi
    if python3 - "$SCRATCH/j.out" "${WPID:-0}" "$py" "$rc" >"$SCRATCH/j.py" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
pid, rc = int(sys.argv[2]), int(sys.argv[4])
WEIRD = 'q"uo\nte\ufffd\ufffd(\\'
def walk(o):
    if isinstance(o, dict):
        assert o.get("schema") == 1, "an object without schema 1: %r" % (o,)
        for v in o.values(): walk(v)
    elif isinstance(o, list):
        for v in o: walk(v)
walk(doc)
exec(sys.argv[3])
PY
    then
        pass "$name"
    else
        fail "$name" "$(tail -n 2 "$SCRATCH/j.py" | tr '\n' '|')"
    fi
}
AS=()

# --- migrctl check ----------------------------------------------------------
# A one-node map on a port nothing uses, a socket where no migrd answers.
CPORT=$((20000 + (${MIGR_VCLUSTER_ID:-0} * 97 + RANDOM) % 20000))
printf 'cluster c\nnode a 127.0.0.1:%d\n' "$CPORT" >"$SCRATCH/one.conf"
CHECKS="root kernel ptrace clone3_set_tid pidfd process_vm_readv userfaultfd cpu_features cgroup cluster_map"
CHECKS+=" cluster_key link_port migration_port open_mpi migrd"
# check_run OUT ARGS...: migrctl check ARGS > OUT; its exit status
check_run() {
    local o=$1
    shift
    timeout 60 "$MIGRCTL_BIN" --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/one.conf" --node a "$@" \
        >"$o" 2>"$o.err" </dev/null
}
# check_line OUT NAME LEVEL [REGEX]: the line of check NAME is LEVEL (and matches REGEX)
check_line() {
    local l
    l=$(grep -E "^(ok|warn|FAIL) +$2 " "$1")
    [[ $l =~ ^$3\  ]] || { echo "check '$2' is not $3: '$l'"; return 1; }
    [[ -z ${4:-} || $l =~ $4 ]] || { echo "check '$2' does not match /$4/: '$l'"; return 1; }
}

case_check_lines() {
    local rc names fails
    check_run "$SCRATCH/check.out"
    rc=$?
    [[ ! -s $SCRATCH/check.out.err ]] || { echo "stderr: $(head -n 2 "$SCRATCH/check.out.err")"; return 1; }
    # one line per check, in order, then the verdict
    names=$(sed '$d' "$SCRATCH/check.out" | sed -E 's/^(ok  |warn|FAIL)  (.{17}).*/\2/; s/ +$//; s/ /_/g' | xargs)
    [[ $names == "$CHECKS" ]] || { echo "checks '$names', not '$CHECKS'"; return 1; }
    sed '$d' "$SCRATCH/check.out" | grep -Evq '^(ok  |warn|FAIL)  [a-z0-9_ ]{17} [^ ]' &&
        { echo "a line not 'LEVEL  NAME  WHAT': $(grep -Ev '^(ok  |warn|FAIL)  ' "$SCRATCH/check.out" | head -n 1)"; return 1; }
    fails=$(grep -c '^FAIL' "$SCRATCH/check.out")
    ((rc == (fails > 0))) || { echo "exit $rc with $fails FAIL lines"; return 1; }
    tail -n 1 "$SCRATCH/check.out" | grep -Eq "^migr (can|cannot) run here: $fails failed" ||
        { echo "last line: $(tail -n 1 "$SCRATCH/check.out")"; return 1; }
    # a problem names its fix
    grep -E '^(warn|FAIL)' "$SCRATCH/check.out" | grep -v 'fix: ' | grep -Ev '^warn +(cluster key|ports)' |
        grep -Ev 'not tried as uid' | grep -q . && { echo "no fix: $(grep -E '^(warn|FAIL)' "$SCRATCH/check.out" | grep -v 'fix: ' | head -n 1)"; return 1; }
    check_line "$SCRATCH/check.out" "cluster map" ok "this one is a \\(127\\.0\\.0\\.1, link port $CPORT" &&
        check_line "$SCRATCH/check.out" "link port" ok "127\\.0\\.0\\.1:$CPORT is free" &&
        check_line "$SCRATCH/check.out" "cluster key" ok "none needed" &&
        check_line "$SCRATCH/check.out" migrd warn "no migrd answers on $SCRATCH/nomigrd.sock.*fix: start it"
}
run_case "migrctl check: one line per check (ok/warn/FAIL, what, the fix), exit 1 iff one FAILed" 90 case_check_lines

json_ok "migrctl check --json: parses, schema 1 in every object, agrees with the exit status" \
    --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/one.conf" --node a -- '
names = " ".join(c["name"].replace(" ", "_") for c in doc["checks"])
assert names == "'"$CHECKS"'", names
assert all(c["status"] in ("ok", "warn", "fail") for c in doc["checks"])
fails = sum(c["status"] == "fail" for c in doc["checks"])
assert doc["failed"] == fails and doc["ok"] == (fails == 0) and rc == (fails > 0), (doc["ok"], rc)
assert all(c["fix"] is not None for c in doc["checks"] if c["status"] == "fail"), doc'

case_check_not_in_map() {
    check_run "$SCRATCH/check.nomap" --node zz && { echo "exit 0"; return 1; }
    check_line "$SCRATCH/check.nomap" "cluster map" FAIL "does not name this node, zz; fix: add 'node zz ADDRESS'"
}
run_case "migrctl check: a map without this node FAILs, exit 1" 90 case_check_not_in_map

case_check_key() {
    printf 'cluster c\nnode a 127.0.0.1:%d\nnode b 127.0.0.2:%d\nkey %s\n' "$CPORT" "$CPORT" "$SCRATCH/c.key" \
        >"$SCRATCH/two.conf"
    rm -f "$SCRATCH/c.key"
    "$MIGRCTL_BIN" keygen "$SCRATCH/c.key" >/dev/null || { echo "keygen failed"; return 1; }
    timeout 60 "$MIGRCTL_BIN" --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/two.conf" --node a \
        >"$SCRATCH/check.key" 2>&1
    check_line "$SCRATCH/check.key" "cluster key" ok "$SCRATCH/c.key: 32 bytes" || return 1
    chmod 0644 "$SCRATCH/c.key"
    timeout 60 "$MIGRCTL_BIN" --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/two.conf" --node a \
        >"$SCRATCH/check.key" 2>&1 && { echo "exit 0 with a key of mode 0644"; return 1; }
    check_line "$SCRATCH/check.key" "cluster key" FAIL "fix: chown root .* && chmod 0600"
}
run_case "migrctl check: the cluster key ok at mode 0600, FAIL at 0644" 120 case_check_key

case_check_port_taken() {
    local holder rc
    python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("up", flush=True); time.sleep(60)' \
        "$CPORT" >"$SCRATCH/holder.out" &
    holder=$!
    for ((i = 0; i < 50; i++)); do [[ -s $SCRATCH/holder.out ]] && break; sleep 0.1; done
    check_run "$SCRATCH/check.port"
    rc=$?
    kill "$holder"
    wait "$holder" 2>/dev/null
    ((rc == 1)) || { echo "exit $rc with the link port taken"; return 1; }
    check_line "$SCRATCH/check.port" "link port" FAIL "127\\.0\\.0\\.1:$CPORT is held by python3 \\(pid $holder\\); fix: stop python3"
}
run_case "migrctl check: the link port held by another program FAILs naming it" 90 case_check_port_taken

# as an unprivileged user: root and clone3 set_tid say what cannot be tried
case_check_user() {
    runuser -u nobody -- "$MIGRCTL_BIN" --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/one.conf" --node a \
        >"$SCRATCH/check.user" 2>&1 </dev/null
    check_line "$SCRATCH/check.user" root warn "running as uid [0-9]+: migrd must run as root" &&
        check_line "$SCRATCH/check.user" "clone3 set_tid" warn "not tried as uid"
}
if [[ $(id -u) != 0 ]] || ! command -v runuser >/dev/null || ! runuser -u nobody -- test -x "$MIGRCTL_BIN" 2>/dev/null; then
    skip "migrctl check as a user" "needs root, runuser and a build nobody can run"
else
    run_case "migrctl check as a user: root and clone3 set_tid are warnings that say why" 90 case_check_user
fi

# --- status, ps and log with a private migrd --------------------------------
if [[ $(id -u) != 0 ]]; then
    skip "migrctl status/ps/log --json" "needs root (a private migrd)"
    exit 0
fi
# where another user can reach the socket
PUB=$(mktemp -d /tmp/migr-tools.XXXXXX)
chmod 0755 "$PUB"
at_exit "rm -rf '$PUB'"
export MIGR_SOCKET=$PUB/migrd.sock
# node a and two nodes that never answer: status lists three nodes (in one
# message, as it lists the mailboxes)
printf 'cluster c\nnode a 127.0.0.1:%d\nnode b 127.0.0.2:%d\nnode c 127.0.0.3:%d\n' "$CPORT" "$CPORT" "$CPORT" \
    >"$SCRATCH/three.conf"
if ! start_migrd "$MIGR_SOCKET" "$SCRATCH/migrd.log" --config "$SCRATCH/three.conf" --node a --insecure; then
    fail "migrd starts for status/ps/log" "no socket; $(tail -n 2 "$SCRATCH/migrd.log" | tr '\n' '|')"
    exit 0
fi
# a command whose name has a quote, a newline, bytes that are not UTF-8, a backslash
WEIRD=$SCRATCH/$'q"uo\nte\xff\xc3(\\'
cp "$(command -v sleep)" "$WEIRD"
"$MIGRCTL_BIN" run --pidfile "$SCRATCH/weird.pid" -- "$WEIRD" 60 >/dev/null 2>&1 &
at_exit "kill $! 2>/dev/null"
for ((i = 0; i < 50; i++)); do [[ -s $SCRATCH/weird.pid ]] && break; sleep 0.1; done
WPID=$(cat "$SCRATCH/weird.pid" 2>/dev/null)
"$BUILD/test/security/postman" recv 7340033 0 60 "$SCRATCH/mbox.ready" >/dev/null 2>&1 &
at_exit "kill $! 2>/dev/null"
for ((i = 0; i < 50; i++)); do [[ -e $SCRATCH/mbox.ready ]] && break; sleep 0.1; done
timeout 20 "$MIGRCTL_BIN" migrate "$WPID" --to nowhere >/dev/null 2>&1

AS=()
json_ok "ps --json: the process, its command escaped (quote, newline, not UTF-8, backslash)" ps -- '
p = [p for p in doc["processes"] if p["pid"] == pid]
assert len(p) == 1, doc
p = p[0]
assert p["command"] == WEIRD, repr(p["command"])
assert p["user"] == "root" and p["uid"] == 0 and not p["hidden"] and p["state"] == "running", p
assert p["job"] is None and p["rank"] is None and p["home"] == "a" and p["moves"] == 0, p'
json_ok "log --json: the refused move, its reason, who asked" log -- '
m = [m for m in doc["moves"] if m["pid"] == pid]
assert len(m) == 1, doc
m = m[0]
assert m["result"] == "failed" and "no node nowhere" in m["reason"], m
assert m["from"] == "a" and m["to"] == "nowhere" and m["requester"] == "root" and m["command"] == WEIRD, m
assert m["start"].endswith("Z") and m["start_unix_ms"] > 1.6e12 and m["seq"] >= 1, m'
json_ok "status --json: this node, its link, the mailbox [112,1] 0" status -- '
assert doc["node"]["name"] == "a" and doc["node"]["port"] > 0, doc["node"]
assert [(l["node"], l["state"]) for l in doc["links"]] == [("a", "self"), ("b", "down"), ("c", "down")], doc["links"]
mb = [b for b in doc["mailboxes"] if b["job"] == "[112,1]"]
assert len(mb) == 1 and mb[0]["jobid"] == 7340033 and mb[0]["rank"] == 0 and mb[0]["inbox_size"] > 0, doc["mailboxes"]'
# doc/json-schema.md documents every field, in order, of each record.
case_schema_doc() {
    local c
    for c in status ps log; do "$MIGRCTL_BIN" "$c" --json >"$SCRATCH/doc.$c" || { echo "$c --json failed"; return 1; }; done
    "$MIGRCTL_BIN" --socket "$SCRATCH/nomigrd.sock" check --config "$SCRATCH/one.conf" --node a --json >"$SCRATCH/doc.check"
    python3 - "$TOP/doc/json-schema.md" "$SCRATCH/doc" <<'PY'
import json, re, sys
doc, out = open(sys.argv[1]).read(), sys.argv[2]
def tables(cmd):
    sec = re.search(r"^## `migrctl %s --json`\n(.*?)(?=^## |\Z)" % cmd, doc, re.S | re.M).group(1)
    got, cur = [], None
    for line in sec.split("\n"):
        m = re.match(r"\| `([a-z_]+)` \|", line)
        if m:
            cur = cur if cur is not None else []
            cur.append(m.group(1))
        elif cur is not None:
            got.append(cur)
            cur = None
    if cur:
        got.append(cur)
    return got
def keys(o):
    return [k for k in o if k != "schema"]
bad = []
for cmd, records in (("status", lambda d: [d["node"], d["links"][0], d["mailboxes"][0]]),
                     ("ps", lambda d: [d["processes"][0]]), ("log", lambda d: [d["moves"][0]]),
                     ("check", lambda d: [d, d["checks"][0]])):
    d = json.load(open("%s.%s" % (out, cmd)))
    want = tables(cmd)
    for i, rec in enumerate(records(d)):
        if i >= len(want) or keys(rec) != want[i]:
            bad.append("%s record %d: output %s, doc %s" % (cmd, i, keys(rec), want[i] if i < len(want) else None))
assert not bad, "\n".join(bad)
PY
}
run_case "doc/json-schema.md: every field of status, ps, log and check --json, in order" 30 case_schema_doc

# another user sees neither the job nor the moves of root's processes
if command -v runuser >/dev/null && runuser -u nobody -- test -x "$MIGRCTL_BIN" 2>/dev/null; then
    AS=(runuser -u nobody --)
    json_ok "ps --json as another user: pid, user, state and command only" ps -- '
p = [p for p in doc["processes"] if p["pid"] == pid][0]
assert p["hidden"] and p["moves"] is None and p["job"] is None and p["last_frozen_ms"] is None, p
assert p["command"] == WEIRD and p["user"] == "root", p'
    json_ok "log --json as another user: not root's moves" log -- '
assert doc["moves"] == [], doc'
    json_ok "status --json as another user: the mailbox without job or rings" status -- '
assert all(b["hidden"] and b["job"] is None and b["inbox_size"] is None for b in doc["mailboxes"]), doc'
    AS=()
else
    skip "ps/log/status --json as another user" "needs runuser and a build nobody can run"
fi

# The tables: USER column, job ids as Open MPI prints them, one ring-use column.
case_tables() {
    local ps log st
    ps=$("$MIGRCTL_BIN" ps) && log=$("$MIGRCTL_BIN" log) && st=$("$MIGRCTL_BIN" status) || { echo "a command failed"; return 1; }
    [[ $(ps_fields "$WPID" USER UID STATE <<<"$ps") == "root 0 running" ]] || { echo "ps: $ps"; return 1; }
    grep -q "q\"uo?te" <<<"$ps" || { echo "ps prints the newline of the command: $ps"; return 1; }
    grep -Eq "^[0-9-]+ [0-9:]+ +$WPID root +- +- +a +nowhere .* failed: no node nowhere in the cluster map" <<<"$log" ||
        { echo "log: $log"; return 1; }
    grep -Eq '^\[112,1\] +0 +[0-9]+ +root +0\.0% of [0-9.]+ [KMG]iB +0\.0% of [0-9.]+ [KMG]iB +0 +0$' <<<"$st" ||
        { echo "status: $(tail -n 2 <<<"$st" | tr '\n' '|')"; return 1; }
}
run_case "ps, log and status tables: USER, [family,local] job ids, ring use in one column" 30 case_tables

case_completion_values() {
    local got
    got=$(complete_words migrctl migrate "$WPID" --to "") && [[ $got == "a b c" ]] || { echo "--to: '$got', not the nodes a b c"; return 1; }
    got=$(complete_words migrctl migrate "") && [[ " $got " == *" $WPID "* ]] || { echo "migrate: '$got' without $WPID"; return 1; }
}
run_case "bash completion: migrate offers the pids of migrctl ps, --to the nodes of migrctl status" 30 case_completion_values

# check asks migrd for its status: node a answers (of three nodes)
case_check_migrd() {
    timeout 60 "$MIGRCTL_BIN" check --config "$SCRATCH/three.conf" --node a >"$SCRATCH/check.3" 2>&1
    check_line "$SCRATCH/check.3" migrd ok "answers on $MIGR_SOCKET: node a, up"
}
run_case "migrctl check: migrd of a three-node map answers" 90 case_check_migrd

# The log is a ring of the last 256 moves: 300 more refused moves leave
# exactly the 256 newest, all sent (in a few messages), in order.
case_log_ring() {
    local i
    for ((i = 0; i < 300; i++)); do
        "$MIGRCTL_BIN" migrate "$WPID" --to nowhere 2>/dev/null && { echo "a move to nowhere succeeded"; return 1; }
    done
    "$MIGRCTL_BIN" log --json >"$SCRATCH/ring.json" || { echo "log --json failed"; return 1; }
    python3 - "$SCRATCH/ring.json" <<'PY' || return 1
import json, sys
moves = json.load(open(sys.argv[1]))["moves"]
seqs = [m["seq"] for m in moves]
assert len(moves) == 256, "%d moves" % len(moves)
assert seqs == list(range(seqs[0], seqs[0] + 256)) and seqs[-1] >= 301, (seqs[0], seqs[-1])
PY
    [[ $("$MIGRCTL_BIN" log | wc -l) == 257 ]] || { echo "the table has $("$MIGRCTL_BIN" log | wc -l) lines, not 1 + 256"; return 1; }
}
run_case "log keeps the last 256 moves, oldest first, all of them sent" 120 case_log_ring

# A node with many mailboxes: status lists every one of them (as a table
# and as JSON).  Sent one message per mailbox, the listing fills the
# requester's socket buffer and migrd stops half-way.
case_status_many() {
    local n=600 ready=$SCRATCH/many.ready i rows
    rm -f "$ready"
    "$BUILD/test/security/postman" many 7340034 0 "$n" 90 "$ready" >"$SCRATCH/many.out" 2>&1 &
    local pm=$!
    for ((i = 0; i < 300; i++)); do [[ -e $ready ]] && break; sleep 0.1; done
    [[ -e $ready ]] || { echo "postman many: $(tr '\n' '|' <"$SCRATCH/many.out")"; kill "$pm"; return 1; }
    "$MIGRCTL_BIN" status >"$SCRATCH/many.table" 2>&1 && "$MIGRCTL_BIN" status --json >"$SCRATCH/many.json" 2>&1
    local rc=$?
    kill "$pm"
    wait "$pm" 2>/dev/null
    ((rc == 0)) || { echo "status failed: $(tail -n 1 "$SCRATCH/many.table" "$SCRATCH/many.json" | tr '\n' '|')"; return 1; }
    rows=$(grep -Ec '^\[112,2\] +[0-9]+ ' "$SCRATCH/many.table")
    ((rows == n)) || { echo "the table lists $rows of the $n mailboxes"; return 1; }
    grep -Eq "^node a .*, ($n|$((n + 1))) processes registered" "$SCRATCH/many.table" ||
        { echo "first line: $(head -n 1 "$SCRATCH/many.table")"; return 1; }
    python3 - "$SCRATCH/many.json" "$n" <<'PY' || return 1
import json, sys
doc, n = json.load(open(sys.argv[1])), int(sys.argv[2])
ranks = sorted(b["rank"] for b in doc["mailboxes"] if b["job"] == "[112,2]")
assert ranks == list(range(n)), "%d mailboxes of [112,2] in the JSON" % len(ranks)
assert [(l["node"], l["state"]) for l in doc["links"]] == [("a", "self"), ("b", "down"), ("c", "down")], doc["links"]
PY
}
run_case "status lists all of 600 mailboxes (table and JSON)" 120 case_status_many
