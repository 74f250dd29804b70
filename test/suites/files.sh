#!/bin/bash
# test/suites/files.sh -- regular files after moves (issue 10, part 3): a
# file whose open file description the process shares with its home (a
# shell redirect, `( migrctl run -- prog; echo done ) > out`) keeps one
# offset over any number of moves, so the file is byte-identical to a run
# without migr and the shell goes on where the process stopped: moves
# home -> n2 -> n3 -> home, an exit away from home, O_APPEND (`>>`),
# stderr into the same file (`2>&1`), and a file the process opened itself,
# which keeps its own offset.
# Runs on its own virtual cluster (MIGR_VCLUSTER_ID=11), torn down at exit.
source "$(dirname "$0")/../lib.sh"
source "$TOP/test/deputy_lib.sh"
export MIGR_VCLUSTER_ID=${MIGR_VCLUSTER_ID:-11}
deputy_suite files writer || exit 0
WRITER=$SCRATCH/writer

LINES=100 MS=40

# the shell around the run: a line before, the run on n1, then the offset
# of the shared description beside the file's size (NAME.pos), a line after
shell_around() {
    local name=$1 rc pos
    shift
    echo start
    "$V" exec n1 "$C" run --pidfile "$SCRATCH/$name.pid" -- "$WRITER" "$LINES" "$MS" 0 "$@"
    rc=$?
    read -r _ pos </proc/$BASHPID/fdinfo/1
    echo "$pos $(stat -c %s "$SCRATCH/$name.out")" >"$SCRATCH/$name.pos"
    echo "done"
    echo "$rc" >"$SCRATCH/$name.rc"
}

# start_shared NAME REDIRECT ARGS...: shell_around in the background with
# its stdout redirected (">": truncated, ">>": appended to a line "old",
# "2>&1": stderr too) into NAME.out; sets PID (the process).
start_shared() {
    local name=$1 redir=$2
    shift 2
    vc_pids_apart
    rm -f "$SCRATCH/$name".{pid,rc,pos}
    case $redir in
    '>') ( shell_around "$name" "$@" ) >"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err" & ;;
    '>>') echo old >"$SCRATCH/$name.out"
          ( shell_around "$name" "$@" ) >>"$SCRATCH/$name.out" 2>"$SCRATCH/$name.err" & ;;
    '2>&1') ( shell_around "$name" "$@" ) >"$SCRATCH/$name.out" 2>&1 & ;;
    esac
    deputy_pid "$name"
}

# check_shared NAME EXPECTED-FILE: the run ended with status 0, the file is
# EXPECTED byte for byte, and the shell's offset was at the end of the
# process's output when the process ended
check_shared() {
    local name=$1 want=$2 rc pos size
    rc=$(deputy_rc "$name" 30)
    [[ $rc == 0 ]] || { echo "status $rc: $(tail -n 2 "$SCRATCH/$name.err" 2>/dev/null | tr '\n' '|')"; return 1; }
    cmp "$want" "$SCRATCH/$name.out" >"$SCRATCH/$name.cmp" 2>&1 ||
        { echo "file differs from a run without migr: $(cat "$SCRATCH/$name.cmp"); $(diff "$want" "$SCRATCH/$name.out" | head -n 4 | tr '\n' '|')"; return 1; }
    read -r pos size <"$SCRATCH/$name.pos"
    [[ $pos == "$size" ]] || { echo "the shell's offset is $pos after the run, the file has $size bytes"; return 1; }
}

# expect_lines PREFIX TAG...: the file of a run without migr
expect_lines() {
    local i t
    [[ -n $1 ]] && echo "$1"
    echo start
    shift
    for ((i = 1; i <= LINES; i++)); do for t; do echo "$t $i"; done; done
    echo "done"
}

case_redirect() {
    start_shared redir '>' || return 1
    tour n2 n3 n1 || return 1
    expect_lines "" out >"$SCRATCH/redir.want"
    check_shared redir "$SCRATCH/redir.want"
}
run_case redirect-moves-home-n2-n3-home 90 case_redirect

case_exit_away() {
    start_shared away '>' || return 1
    tour n2 n3 || return 1
    expect_lines "" out >"$SCRATCH/away.want"
    check_shared away "$SCRATCH/away.want"
}
run_case redirect-exit-away-from-home 90 case_exit_away

case_append() {
    start_shared append '>>' || return 1
    tour n2 n1 n3 || return 1
    expect_lines old out >"$SCRATCH/append.want"
    check_shared append "$SCRATCH/append.want"
}
run_case append-moves-n2-home-n3-exit-away 90 case_append

case_stderr() {
    start_shared both '2>&1' --stderr || return 1
    tour n2 n3 n1 n2 || return 1
    expect_lines "" out err >"$SCRATCH/both.want"
    check_shared both "$SCRATCH/both.want"
}
run_case stderr-into-the-same-file-4-moves 90 case_stderr

case_own_file() {
    start_shared own '>' --own "$SCRATCH/own.txt" || return 1
    tour n2 n3 n1 n3 || return 1
    expect_lines "" out >"$SCRATCH/own.want"
    check_shared own "$SCRATCH/own.want" || return 1
    cmp <(for ((i = 1; i <= LINES; i++)); do echo "own $i"; done) "$SCRATCH/own.txt" ||
        { echo "its own file differs"; return 1; }
}
run_case own-file-keeps-its-offset 90 case_own_file
