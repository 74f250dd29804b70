#!/usr/bin/env bash
# The administrator's view of the installed programs, without root, migrd
# or a virtual cluster: for migrd, migrctl and migr-ckpt, --help, --version,
# every subcommand's --help and a bad option (exit status and first line;
# an error is one line on stderr, nothing on stdout); the test hooks out of
# the help; `make -n install` lists the man pages; every man page renders
# without a warning (groff -ww), SKIP without groff.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

VERSION=$(sed -n 's/^PACKAGE_VERSION = //p' "$BUILD/Makefile" 2>/dev/null)
MIGR_CKPT_BIN=$BUILD/tools/migr-ckpt
declare -A BIN=([migrd]=$MIGRD_BIN [migrctl]=$MIGRCTL_BIN [migr-ckpt]=$MIGR_CKPT_BIN)
declare -A SUBS=([migrd]="" [migrctl]="status ps run migrate keygen help" [migr-ckpt]="dump restore reincarnate info help")
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
    line2=$(sed -n 2p "$SCRATCH/out")
    [[ $line2 =~ ^protocols:\ [a-z].*\ [0-9]+$ ]] && pass "$p --version: then the protocol versions" ||
        fail "$p --version: then the protocol versions" "second line '$line2'"
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

# Every man page renders without a warning.
for m in "${MANS[@]}"; do
    f=$TOP/man/$m
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
    fi
done
