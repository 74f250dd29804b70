# shellcheck shell=bash
# shellcheck disable=SC2034 # MIGR_MPI, MPIRUN, MJOB, HOME_OF: for the suites
# test/mpi_lib.sh -- what the suites that run MPI jobs across a virtual
# cluster and look at their endings share (odls.sh, mpi_moves.sh): a job in
# the background, its status, its ranks' mailboxes and homes, moving a rank
# of it, comparing its ending with the same job's without migr, and
# checking that nothing of it is left on any node.  Source it after
# test/lib.sh, once the cluster is up and SPREAD holds `test/vcluster
# mpirun-args`; do not run it.
#
# Settings a suite may change:
#   MPI_NODES         the nodes (default n1 n2 n3)
#   MPI_LEFT_PATTERN  processes that must be gone after a job (grep -E on
#                     `ps -eo pid,args` of every node)

MPI_NODES=(n1 n2 n3)
MPI_LEFT_PATTERN='odls_job|migrctl run|orted'
# mpirun options that launch every rank through its home deputy
MIGR_MPI=(--mca odls migr --mca odls_migr_deputy "$MIGRCTL_BIN")

# mpi_job NAME [MPIRUN-OPTION...] -- PROG [ARG...]: mpirun over the cluster
# (SPREAD) in the background; output in $SCRATCH/NAME.out, status in
# $SCRATCH/NAME.rc; MPIRUN is its pid.
mpi_job() {
    local name=$1 opts=()
    shift
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    rm -f "$SCRATCH/$name.rc" "$SCRATCH/$name.pid"
    (
        mpirun "${SPREAD[@]}" "${opts[@]}" "$@" </dev/null >"$SCRATCH/$name.out" 2>&1 &
        echo $! >"$SCRATCH/$name.pid"
        wait $!
        echo $? >"$SCRATCH/$name.rc"
    ) &
    while [[ ! -s $SCRATCH/$name.pid ]]; do sleep 0.05; done
    MPIRUN=$(cat "$SCRATCH/$name.pid")
}

# await NAME SECONDS: the status of job NAME once it ended, or "timeout".
await() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -s $SCRATCH/$1.rc ]] && { cat "$SCRATCH/$1.rc"; return; }
        sleep 0.1
    done
    echo timeout
}

# started NAME N: wait (20 s) until N ranks of odls_job printed their line.
started() {
    local i
    for ((i = 0; i < 200; i++)); do
        (($(grep -c '^rank ' "$SCRATCH/$1.out") == $2)) && return 0
        [[ -s $SCRATCH/$1.rc ]] && break
        sleep 0.1
    done
    echo "not all $2 ranks started: $(tr '\n' '|' <"$SCRATCH/$1.out")"
    return 1
}

# registered NODE: how many mailboxes NODE's migrd has (exiled ones too).
registered() {
    "$VCLUSTER" exec "$1" "$MIGRCTL_BIN" status 2>/dev/null | awk 'NR == 1 { print $(NF - 2) }'
}

# mjob_ready NAME COUNT...: wait (30 s) until job NAME (launched by odls
# migr) has COUNT mailboxes on each node of MPI_NODES in turn, i.e. every
# rank is past MPI_Init (a rank moved before it has its mailbox is not
# what the callers test).  Sets MJOB (the job as `migrctl ps` shows it,
# [family,local]) and HOME_OF[rank].
mjob_ready() {
    local name=$1 i k n all=0 row
    shift
    local want=("$@")
    MJOB=
    for ((i = 0; i < 300; i++)); do
        [[ -s $SCRATCH/$name.rc ]] && break
        all=1
        for ((k = 0; k < ${#MPI_NODES[@]}; k++)); do
            [[ $(registered "${MPI_NODES[k]}") == "${want[k]:-0}" ]] || { all=0; break; }
        done
        ((all)) && break
        sleep 0.1
    done
    ((all)) && [[ ! -s $SCRATCH/$name.rc ]] ||
        { echo "not every rank opened its mailbox: $(tail -n 3 "$SCRATCH/$name.out" | tr '\n' '|')"; return 1; }
    HOME_OF=()
    for n in "${MPI_NODES[@]}"; do
        while read -r row; do
            [[ -n $row ]] || continue
            read -r MJOB k <<<"$row"
            HOME_OF[k]=$n
        done < <("$VCLUSTER" exec "$n" "$MIGRCTL_BIN" ps |
            awk -v n="$n" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                $c["HOME"] == n && $c["JOB"] ~ /^\[/ { print $c["JOB"], $c["RANK"] }')
    done
    [[ -n $MJOB ]] || { echo "no rank of the job in migrctl ps"; return 1; }
}

# mmove RANK NODE: move rank RANK of MJOB to NODE, asked at its home; a
# move refused with "try again" is asked again.  Each answer is appended
# to $SCRATCH/mmoves.log; on failure the last one is printed.
mmove() {
    local try rc out=$SCRATCH/mmove.$BASHPID
    for ((try = 0; try < 10; try++)); do
        with_timeout 60 "$VCLUSTER" exec "${HOME_OF[$1]}" "$MIGRCTL_BIN" migrate "$MJOB" "$1" --to "$2" "${@:3}" >"$out" 2>&1
        rc=$?
        cat "$out" >>"$SCRATCH/mmoves.log"
        ((rc == 0)) && return 0
        grep -q "try again" "$out" || break
        sleep 0.2
    done
    echo "move of rank $1 to $2: $(tr '\n' '|' <"$out")"
    return 1
}

# mrank_at RANK: "NODE STATE" of rank RANK of MJOB, as its home sees it.
mrank_at() {
    "$VCLUSTER" exec "${HOME_OF[$1]}" "$MIGRCTL_BIN" ps |
        awk -v j="$MJOB" -v r="$1" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
            $c["JOB"] == j && $c["RANK"] == r { print $c["NODE"], $c["STATE"]; exit }'
}

# nothing_left [JOB]: within 10 s, no rank, deputy or orted (MPI_LEFT_PATTERN),
# migrd record or mailbox on any node; with JOB ([family,local] or the
# number Open MPI prints), not its PMIx namespace either (the job family's
# session directory, jf.FAMILY, on every node).
nothing_left() {
    local i n left fam='' tmp=${TMPDIR:-/tmp}
    if [[ $1 =~ ^\[([0-9]+), ]]; then
        fam=${BASH_REMATCH[1]}
    elif [[ $1 =~ ^[0-9]+$ ]]; then
        fam=$(($1 >> 16))
    fi
    for ((i = 0; i < 50; i++)); do
        left=
        for n in "${MPI_NODES[@]}"; do
            "$VCLUSTER" exec "$n" sh -c "ps -eo pid,args | grep -E '$MPI_LEFT_PATTERN' | grep -v grep" >"$SCRATCH/left" &&
                left+="$n: processes $(tr '\n' '|' <"$SCRATCH/left") "
            "$VCLUSTER" exec "$n" "$MIGRCTL_BIN" ps | grep -q '^(no migratable process' || left+="$n: ps lists a process "
            "$VCLUSTER" exec "$n" "$MIGRCTL_BIN" status | grep -q '^(no process registered)' || left+="$n: a mailbox is left "
            if [[ -n $fam ]] && compgen -G "$tmp/ompi.$n.*/jf.$fam" >/dev/null; then
                left+="$n: the job's session directory $(compgen -G "$tmp/ompi.$n.*/jf.$fam") "
            fi
        done
        [[ -z $left ]] && return 0
        sleep 0.2
    done
    echo "left behind: $left"
    return 1
}

# same_ending NAME-WITHOUT NAME-WITH: mpirun's status and messages match
# (pids, job ids and addresses aside; the ranks' own lines aside).  The
# "[host:pid] " and "[ N] " prefixes of a backtrace are dropped, and so are
# the ranks' lines wherever they are: a process writes a prefix apart from
# its line, and under load another rank's line may come between.  Open
# MPI's rsh launcher warns at times that it could not set the process group
# of an agent that was faster than it (setpgid after exec: EACCES), with or
# without migr: that line is dropped too.
normalize() {
    sed -E 's/\[[A-Za-z0-9._-]+:[0-9]+\] ?//g; s/(PID|pid) [0-9]+/\1 P/g; s/0x[0-9a-f]+/X/g;
        s/\[\[[0-9]+,/[[J,/g; s/rank [0-9]+ of [0-9]+ job [^ ]+ pid P sum [0-9]+//g;
        s/^\[ *[0-9]+\] ?//' "$1" | grep -v -e '^rank ' -e '^$' -e '^plm:rsh: Warning: setpgid' | sort -u
}
same_ending() {
    local rc0 rc1
    rc0=$(await "$1" 60) rc1=$(await "$2" 60)
    [[ $rc0 == "$rc1" ]] || { echo "status $rc1 with migr, $rc0 without"; return 1; }
    diff <(normalize "$SCRATCH/$1.out") <(normalize "$SCRATCH/$2.out") >"$SCRATCH/$2.diff" ||
        { echo "messages differ: $(head -n 6 "$SCRATCH/$2.diff" | tr '\n' '|')"; return 1; }
    echo "status $rc1, as without migr"
}
