#!/bin/bash
# Engine suite: the migration engine's test zoo, bad cases and the Open MPI
# proof (issue 3).  One line per case: PASS: name / FAIL: name: reason /
# SKIP: name: reason.  Binaries are found under ${MIGR_BUILD:-repo root}.
# Every wait is bounded; every process started here is cleaned up.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${MIGR_BUILD:-$top}
CKPT=$B/tools/migr-ckpt
Z=$B/test/engine
REINC=${ENGINE_REINCARNATIONS:-4}
WORK=$(mktemp -d /tmp/migr-engine-suite.XXXXXX)
PIDS=()
npass=0; nfail=0; nskip=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
		pkill -KILL -P "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
	done
	for f in "$WORK"/*/pid; do
		[ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	if [ -n "${ENGINE_KEEP:-}" ]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS: $1"; npass=$((npass + 1)); }
fail() { echo "FAIL: $1: $2"; nfail=$((nfail + 1)); }
skip() { echo "SKIP: $1: $2"; nskip=$((nskip + 1)); }

# wait_for SECONDS COMMAND... : poll until COMMAND succeeds
wait_for() {
	local t=$1; shift
	local end=$((SECONDS + t))
	while ! "$@"; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.05
	done
}

lines() { [ -e "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }

# run_zoo NAME PROG [ARGS...]: run PROG under the deputy, reincarnate it
# $REINC times mid-work, expect "PASS" and exit 0.
run_zoo() {
	local name=$1 prog=$2; shift 2
	local d=$WORK/$name dep rc i
	mkdir -p "$d"
	if [ ! -x "$Z/$prog" ]; then
		skip "$name" "$Z/$prog not built"; return
	fi
	( cd "$d" && exec env ZOO_SECONDS=${ZOO_SECONDS:-5} timeout -s KILL 120 \
		"$Z/deputy" -c "$CKPT" -p "$d/pid" -r "$d/results" -l "$d/ckpt.log" -v \
		-m "${MODE:-reincarnate}" -i "$d/image" -- \
		"$Z/$prog" "$@" > "$d/out" 2>&1 < /dev/null ) &
	dep=$!
	PIDS+=("$dep")
	if ! wait_for 20 grep -qs READY "$d/out"; then
		fail "$name" "program did not get ready: $(tail -2 "$d/out" | tr '\n' ' ')"
		return
	fi
	sleep 0.3
	for ((i = 1; i <= REINC; i++)); do
		pkill -USR1 -x deputy -P "$dep" 2>/dev/null || kill -USR1 "$(pgrep -P "$dep" -x deputy)" 2>/dev/null
		if ! wait_for 30 lines "$d/results" "$i"; then
			fail "$name" "reincarnation $i did not finish $(grep -m1 'migr-ckpt:' "$d/ckpt.log")"
			return
		fi
		if grep -q fail "$d/results"; then
			fail "$name" "reincarnation $i: $(grep -m1 'migr-ckpt:' "$d/ckpt.log")"
			return
		fi
		sleep 0.4
	done
	timeout 120 tail --pid="$dep" -f /dev/null
	wait "$dep"; rc=$?
	if grep -q fail "$d/results" 2>/dev/null; then
		fail "$name" "reincarnation failed: $(grep -v '^ ' "$d/ckpt.log" | grep -i -m1 'migr-ckpt:' )"
	elif [ $rc -ne 0 ]; then
		fail "$name" "exit $rc: $(grep -m1 FAIL "$d/out" || tail -1 "$d/out")"
	elif ! grep -q "^PASS $prog" "$d/out"; then
		fail "$name" "no PASS line"
	else
		pass "$name ($(grep -c ok "$d/results") reincarnations, frozen max $(awk '/frozen/ {if ($2>m) m=$2} END {print m}' "$d/ckpt.log") ms)"
	fi
}

if [ ! -x "$CKPT" ]; then
	echo "FAIL: engine-build: $CKPT not found (build first)"
	echo "0 passed, 1 failed"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: engine: needs root (clone3 set_tid)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

run_zoo threads zoo_threads
run_zoo events zoo_events
run_zoo signals zoo_signals
run_zoo memory zoo_memory
run_zoo registers zoo_regs
run_zoo blocked zoo_blocked
run_zoo rseq-vdso zoo_rseq
run_zoo scheduling zoo_sched
# the same moves through an image file and through a pipe (dump | restore)
MODE=image run_zoo image-file-events zoo_events
MODE=pipe run_zoo image-pipe-threads zoo_threads

# ---------------------------------------------------------------- bad cases

# start_idle DIR ARGS...: zoo_idle in the background, its pid in $IDLE
start_idle() {
	local d=$1; shift
	mkdir -p "$d"
	"$Z/zoo_idle" "$@" > "$d/idle.out" 2>&1 < /dev/null &
	IDLE=$!
	PIDS+=("$IDLE")
	wait_for 10 grep -qs READY "$d/idle.out"
}

# state of a pid: R/S/... , "gone" when it no longer exists
pstate() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo gone; }
tracer() { awk '/^TracerPid/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# still_running PID OUTFILE: alive, not stopped, not traced, still beating
# refusal_verdict NAME STATUS OUTPUT PATTERN PID PID_OUT WHY_IF_ACCEPTED DETAIL:
# a command that had to be refused: it must have failed, said why (the
# extended regex PATTERN), and left process PID running as before.
refusal_verdict() {
	local name=$1 st=$2 out=$3 pat=$4 pid=$5 pout=$6 accepted=$7 detail=$8 why
	if [ "$st" -eq 0 ]; then
		fail "$name" "$accepted"
	elif ! echo "$out" | grep -qE "$pat"; then
		fail "$name" "unclear error: $out"
	elif ! why=$(still_running "$pid" "$pout"); then
		fail "$name" "the target suffered: $why"
	else
		pass "$name ($detail)"
	fi
}

still_running() {
	local before after st
	st=$(pstate "$1")
	case $st in R|S|D) ;; *) echo "state $st"; return 1 ;; esac
	[ "$(tracer "$1")" = 0 ] || { echo "still traced"; return 1; }
	before=$(grep -c beat "$2")
	sleep 0.3
	after=$(grep -c beat "$2")
	[ "$after" -gt "$before" ] || { echo "no longer beating"; return 1; }
}

bad_unsupported() {
	local kind=$1 d=$WORK/unsupported-$1 out why
	start_idle "$d" -u "$kind" -s 30 || { fail "refuse-$kind" "target did not start"; return; }
	out=$(timeout 30 "$CKPT" dump "$IDLE" -o "$d/img" 2>&1)
	if [ $? -eq 0 ]; then
		fail "refuse-$kind" "dump succeeded"
	elif ! echo "$out" | grep -q "not supported"; then
		fail "refuse-$kind" "unexpected error: $out"
	elif ! why=$(still_running "$IDLE" "$d/idle.out"); then
		fail "refuse-$kind" "target not left untouched: $why"
	elif [ -e "$d/img" ]; then
		fail "refuse-$kind" "an image was left behind"
	else
		pass "refuse-$kind ($(echo "$out" | sed 's/.*pid [0-9]*: //'))"
	fi
	kill -KILL "$IDLE" 2>/dev/null
}

bad_images() {
	local d=$WORK/images p size out
	start_idle "$d" -s 30 || { fail "corrupt-image" "target did not start"; return; }
	p=$IDLE
	if ! timeout 30 "$CKPT" dump "$p" -o "$d/good.img" --kill 2> "$d/dump.err"; then
		fail "corrupt-image" "dump failed: $(cat "$d/dump.err")"; return
	fi
	wait "$p" 2>/dev/null
	wait_for 10 test ! -e "/proc/$p"
	size=$(stat -c %s "$d/good.img")
	# a flipped byte in the middle, a truncated tail, a foreign file
	cp "$d/good.img" "$d/flip.img"
	printf '\x5a' | dd of="$d/flip.img" bs=1 seek=$((size / 2)) conv=notrunc status=none
	head -c $((size - 100)) "$d/good.img" > "$d/trunc.img"
	head -c 4096 /bin/sh > "$d/foreign.img"
	local kind img ok=1
	for kind in flip trunc foreign; do
		out=$(timeout 30 "$CKPT" restore -i "$d/$kind.img" --external-null 2>&1)
		if [ $? -eq 0 ]; then
			fail "corrupt-image" "$kind image was restored"; ok=0
		elif [ -e "/proc/$p" ]; then
			fail "corrupt-image" "$kind image: a process $p exists after the refusal"; ok=0
		fi
		echo "$kind: $out" >> "$d/refusals"
	done
	if [ $ok = 1 ]; then
		pass "corrupt-image (flipped: $(grep -o 'checksum mismatch' "$d/refusals" | head -1); truncated: $(grep -c trunc "$d/refusals") refused; foreign refused)"
	fi
	# the intact image restores, from a file and through a pipe
	out=$(timeout 30 "$CKPT" restore -i "$d/good.img" --external-null 2>&1)
	if [ $? -ne 0 ]; then
		fail "image-restore" "intact image: $out"
	elif ! why=$(still_running "$p" "$d/idle.out"); then
		fail "image-restore" "restored process: $why"
	else
		pass "image-restore (pid $p back from a file)"
	fi
	# pid taken: the restored process holds it now
	out=$(timeout 30 "$CKPT" restore -i - --external-null < "$d/good.img" 2>&1)
	refusal_verdict pid-taken $? "$out" "pid $p is in use" "$p" "$d/idle.out" \
		"restored over a live pid" "${out##*: }"
	kill -KILL "$p" 2>/dev/null
}

bad_killed_in_freeze() {
	local d=$WORK/killed out rc st i
	start_idle "$d" -t 32 -s 30 || { fail "killed-in-freeze" "target did not start"; return; }
	out=$(MIGR_ENGINE_FAULT=kill-in-freeze timeout 20 "$CKPT" dump "$IDLE" -o "$d/img" 2>&1)
	rc=$?
	wait "$IDLE" 2>/dev/null
	st=$(pstate "$IDLE")
	if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
		fail "killed-in-freeze" "dump rc $rc"
	elif ! echo "$out" | grep -q "exited during the freeze"; then
		fail "killed-in-freeze" "unclear error: $out"
	elif [ "$st" != gone ] && [ "$st" != Z ]; then
		fail "killed-in-freeze" "target left in state $st"
	elif [ -e "$d/img" ]; then
		fail "killed-in-freeze" "an image was left behind"
	else
		pass "killed-in-freeze (${out##*: })"
	fi
	# the same with a real race: SIGKILL at some point of the dump
	for i in 1 2 3 4 5; do
		start_idle "$d/r$i" -t 64 -s 30 || continue
		( sleep "0.00$i"; kill -KILL "$IDLE" ) &
		timeout 20 "$CKPT" dump "$IDLE" -o "$d/r$i/img" > /dev/null 2>&1
		rc=$?
		wait "$IDLE" 2>/dev/null
		st=$(pstate "$IDLE")
		if [ $rc -eq 124 ] || { [ "$st" != gone ] && [ "$st" != Z ]; }; then
			fail "killed-during-dump-race" "round $i: dump rc $rc, target state $st"
			return
		fi
	done
	pass "killed-during-dump-race (5 rounds, no hang, nothing left stopped)"
}

bad_other_user() {
	local d=$WORK/other out why
	if ! command -v setpriv > /dev/null; then
		skip "other-user" "setpriv not installed"; return
	fi
	start_idle "$d" -s 30 || { fail "other-user" "target did not start"; return; }
	out=$(timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$CKPT" dump "$IDLE" -o /dev/null 2>&1)
	refusal_verdict other-user $? "$out" "not to us|not allowed" "$IDLE" "$d/idle.out" \
		"uid 65534 dumped a root process" "$(echo "$out" | sed 's/.*pid [0-9]*: //')"
	kill -KILL "$IDLE" 2>/dev/null
}

bad_unsupported inotify
bad_unsupported netlink
bad_unsupported timer
bad_images
bad_killed_in_freeze
bad_other_user

# dump without --kill leaves the process stopped; SIGCONT resumes it
dump_leaves_stopped() {
	local d=$WORK/stopped out why st
	start_idle "$d" -t 4 -s 30 || { fail "dump-leaves-stopped" "target did not start"; return; }
	out=$(timeout 30 "$CKPT" dump "$IDLE" -o "$d/img" 2>&1)
	st=$(pstate "$IDLE")
	if [ $? -ne 0 ] && [ ! -s "$d/img" ]; then
		fail "dump-leaves-stopped" "dump failed: $out"
	elif [ "$st" != T ]; then
		fail "dump-leaves-stopped" "state after dump is $st, not T (stopped)"
	elif ! "$CKPT" info "$d/img" | grep -q "^threads: 5"; then
		fail "dump-leaves-stopped" "info does not show 5 threads"
	elif ! kill -CONT "$IDLE" || ! why=$(still_running "$IDLE" "$d/idle.out"); then
		fail "dump-leaves-stopped" "not resumable: $why"
	else
		pass "dump-leaves-stopped (stopped after the dump, resumed by SIGCONT)"
	fi
	kill -KILL "$IDLE" 2>/dev/null
}

# a process of an ordinary user comes back as that user with nothing more
nonroot_creds() {
	local d=$WORK/nonroot before after
	if ! command -v setpriv > /dev/null; then
		skip "nonroot-credentials" "setpriv not installed"; return
	fi
	mkdir -p "$d"; chmod 777 "$d"
	# its output file is its own, on a path it may walk: the restore reopens
	# it with the process's rights
	chmod 711 "$WORK"
	: > "$d/out" && chown 65534:65534 "$d/out"
	( cd "$d" && exec env ZOO_SECONDS=4 timeout -s KILL 60 "$Z/deputy" -c "$CKPT" -p "$d/pid" \
		-r "$d/results" -l "$d/ckpt.log" -v -- setpriv --reuid=65534 --regid=65534 \
		--groups=65534,100 --inh-caps=-all "$Z/zoo_threads" > "$d/out" 2>&1 < /dev/null ) &
	local dep=$!
	PIDS+=("$dep")
	if ! wait_for 20 grep -qs READY "$d/out"; then
		fail "nonroot-credentials" "target did not start: $(tail -1 "$d/out")"; return
	fi
	local p; p=$(cat "$d/pid")
	before=$(grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' "/proc/$p/status")
	pkill -USR1 -x deputy -P "$dep"
	if ! wait_for 30 lines "$d/results" 1 || grep -q fail "$d/results"; then
		fail "nonroot-credentials" "reincarnation failed: $(grep -m1 'migr-ckpt:' "$d/ckpt.log")"
		return
	fi
	after=$(grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' "/proc/$p/status")
	timeout 60 tail --pid="$dep" -f /dev/null
	if [ "$before" != "$after" ]; then
		fail "nonroot-credentials" "credentials changed: $(diff <(echo "$before") <(echo "$after") | tr '\n' ' ')"
	elif ! grep -q "^PASS zoo_threads" "$d/out"; then
		fail "nonroot-credentials" "program failed: $(tail -1 "$d/out")"
	else
		pass "nonroot-credentials (uid/gid 65534, groups, no capabilities: identical after restore)"
	fi
}

dump_leaves_stopped
nonroot_creds

# ---------------------------------------------------------------- Open MPI
# mpi_proof NAME BTL: a 2-rank job computes and communicates while rank 1 is
# reincarnated ten times; it must finish with the verified result, exit 0
# and its complete output.
mpi_proof() {
	local name=$1 btl=$2 d=$WORK/mpi-$1 job rc i steps=${MPI_STEPS:-5000} n=${MPI_MOVES:-10}
	local p1 dep1 lines
	if ! command -v mpirun > /dev/null || [ ! -x "$Z/mpi_ring" ]; then
		skip "$name" "Open MPI (mpirun, mpicc) not available"; return
	fi
	mkdir -p "$d"
	( cd "$d" && exec timeout -s KILL 300 mpirun --allow-run-as-root -np 2 --mca pml ob1 \
		--mca btl "$btl" "$Z/deputy" -k -v -c "$CKPT" -p "$d/pid.%r" -r "$d/results.%r" \
		-l "$d/ckpt.log.%r" -- "$Z/mpi_ring" "$steps" 2000 > "$d/out" 2> "$d/err" < /dev/null ) &
	job=$!
	PIDS+=("$job")
	if ! wait_for 60 test -s "$d/pid.1"; then
		fail "$name" "rank 1 did not start: $(tail -3 "$d/err" | tr '\n' ' ')"; return
	fi
	p1=$(cat "$d/pid.1")
	dep1=$(awk '{print $4}' "/proc/$p1/stat" 2>/dev/null)
	wait_for 30 grep -q "^step 200 " "$d/out"
	for ((i = 1; i <= n; i++)); do
		kill -USR1 "$dep1" 2>/dev/null
		if ! wait_for 30 lines "$d/results.1" "$i"; then
			fail "$name" "move $i did not finish: $(grep -m1 'migr-ckpt:' "$d/ckpt.log.1")"
			return
		fi
		if grep -q fail "$d/results.1"; then
			fail "$name" "move $i failed: $(grep -m1 'migr-ckpt:' "$d/ckpt.log.1")"
			return
		fi
		sleep 0.2
	done
	timeout 300 tail --pid="$job" -f /dev/null
	wait "$job"; rc=$?
	lines=$(grep -c "^step " "$d/out")
	if [ $rc -ne 0 ]; then
		fail "$name" "mpirun exit $rc: $(tail -3 "$d/err" | tr '\n' ' ')"
	elif ! grep -q "^RESULT ok steps $steps ranks 2 " "$d/out"; then
		fail "$name" "no verified result"
	elif [ "$lines" -ne $((steps / 100)) ] ||
	     [ "$(grep '^step ' "$d/out" | awk '{print $2}' | tr '\n' ' ')" != "$(seq 100 100 "$steps" | tr '\n' ' ')" ]; then
		fail "$name" "output incomplete or out of order ($lines step lines)"
	elif [ "$(grep -c ok "$d/results.1")" -ne "$n" ]; then
		fail "$name" "only $(grep -c ok "$d/results.1") of $n moves"
	elif [ "$(awk '/^step /' "$d/out" | head -1 | awk '{print $2}')" = "" ]; then
		fail "$name" "no output"
	else
		pass "$name ($n reincarnations of rank 1 mid-job, frozen max $(awk '/frozen/ {if ($2>m) m=$2} END {print m}' "$d/ckpt.log.1") ms, result verified)"
	fi
}

mpi_proof openmpi-vader self,vader
mpi_proof openmpi-tcp self,tcp

echo "$npass passed, $nfail failed, $nskip skipped"
[ $nfail -eq 0 ]
