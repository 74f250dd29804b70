#!/usr/bin/env bash
# test/fuzz/build.sh OUTDIR [HARNESS...] -- build the libFuzzer harnesses
# (clang, -fsanitize=fuzzer,address) into OUTDIR; objects are kept there
# and rebuilt only when their source or a header is newer.  Exit 3 when
# clang or libFuzzer is missing (the caller skips), 1 on a build error.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: build.sh OUTDIR [HARNESS...]}
shift
CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "no $CC (apt-get install clang)"; exit 3; }
mkdir -p "$OUT/obj"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; return (int)n * 0; }' \
    >"$OUT/probe.c"
"$CC" -fsanitize=fuzzer "$OUT/probe.c" -o "$OUT/probe" 2>/dev/null ||
    { echo "$CC cannot link libFuzzer (apt-get install libclang-rt-14-dev)"; exit 3; }
DEPS=$(pkg-config --cflags --libs libevent libsodium libcrypto 2>/dev/null || echo "-levent -lsodium -lcrypto")
CFLAGS=(-g -O1 -fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE
    -DMIGR_VERSION=\"fuzz\" -I"$TOP" -I"$TOP/dicom/include" -I"$TOP/migrd/engine" -Wno-unused-command-line-argument)

cd "$TOP" || exit 1
common=(common/*.c)
postal=(migrd/postal/*.c migrd/cluster/*.c migrd/util/*.c "${common[@]}")
engine=($(ls migrd/engine/*.c | grep -v migr-ckpt.c))
daemon=("${postal[@]}" migrd/move/migrate*.c migrd/move/move_log.c migrd/move/mig_auth.c migrd/move/node_mem.c migrd/move/creds_check.c migrd/move/workers.c migrd/move/forward*.c migrd/move/evacuate.c migrd/pager/*.c "${engine[@]}")
declare -A src=(
    [rings]="test/fuzz/fuzz_rings.c test/fuzz/office.c ${postal[*]}"
    [link]="test/fuzz/fuzz_link.c test/fuzz/office.c ${postal[*]}"
    [migproto]="test/fuzz/fuzz_migproto.c test/fuzz/office.c ${daemon[*]}"
    [image]="test/fuzz/fuzz_image.c ${engine[*]}"
    [ctlmsg]="test/fuzz/fuzz_ctlmsg.c ${common[*]}"
)
want=("$@")
((${#want[@]})) || want=(rings link migproto image ctlmsg)
newest_header=$(ls -t common/*.h migrd/*/*.h migrd/*.h test/fuzz/*.h | head -1)
rc=0
for h in "${want[@]}"; do
    [[ -n ${src[$h]:-} ]] || { echo "no harness $h"; exit 1; }
    objs=()
    for f in ${src[$h]}; do
        o=$OUT/obj/${f//\//_}.o
        if [[ ! -e $o || $f -nt $o || $newest_header -nt $o ]]; then
            "$CC" "${CFLAGS[@]}" -c "$f" -o "$o" || { rc=1; continue; }
        fi
        objs+=("$o")
    done
    # move/ refers to the core's move_ops and migrate_ctl only through
    # pointers; the linker drops what a harness never calls.
    relink=0
    [[ -e $OUT/fuzz_$h ]] || relink=1
    for o in "${objs[@]}"; do [[ $o -nt $OUT/fuzz_$h ]] && relink=1; done
    if ((relink)); then # a new file: a harness running from the old one goes on
        "$CC" -fsanitize=fuzzer,address -Wl,--gc-sections "${objs[@]}" $DEPS -lpthread -o "$OUT/fuzz_$h.new" &&
            mv -f "$OUT/fuzz_$h.new" "$OUT/fuzz_$h" || rc=1
    fi
done
exit $rc
