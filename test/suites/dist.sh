#!/usr/bin/env bash
# What a release and an installation contain, without root, migrd or a
# virtual cluster: the tarball holds every file of the repository (`make
# distdir`, compared with `git ls-files`); `make install DESTDIR=...` leaves
# no .la in the component directory and installs the pkg-config file, the
# header and the library, with which a client program builds and runs; the
# installed components report migr's version to ompi_info.
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"

VERSION=$(sed -n 's/^PACKAGE_VERSION = //p' "$BUILD/Makefile" 2>/dev/null)
# bmake ARGS...: make in the build tree, also when make check runs this
# (not as a sub-make of it: no inherited flags, no "Entering directory")
bmake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$BUILD" "$@"; }
# mkvalue VAR: the value of make's VAR in the build tree, expanded
mkvalue() { bmake -f Makefile -f - migr-print-var <<<"migr-print-var: ; @echo \$($1)"; }
if [[ -z $VERSION ]]; then
    fail "dist: a configured build tree" "no Makefile in $BUILD (./configure first)"
    exit 0
fi

# the files of the repository that the tarball does not need
NOT_SHIPPED='^\.gitignore$'
tarball_has_the_repository() {
    local d=$SCRATCH/distdir missing
    bmake distdir distdir="$d" top_distdir="$d" >"$SCRATCH/distdir.log" 2>&1 ||
        { tail -n 5 "$SCRATCH/distdir.log"; return 1; }
    git -C "$TOP" ls-files | grep -Ev "$NOT_SHIPPED" | sort >"$SCRATCH/git.list"
    (cd "$d" && find . -type f -o -type l) | sed 's|^\./||' | sort >"$SCRATCH/dist.list"
    missing=$(comm -23 "$SCRATCH/git.list" "$SCRATCH/dist.list")
    [[ -z $missing ]] || { echo "not in the tarball (EXTRA_DIST):" $missing; return 1; }
}
if [[ $(git -C "$TOP" rev-parse --show-toplevel 2>/dev/null) == "$TOP" ]]; then
    run_case "dist: the tarball holds every file of git ls-files" 120 tarball_has_the_repository
else
    skip "dist: the tarball holds every file of git ls-files" "not a git checkout (a tarball's tree)"
fi

# The project's one address is AC_INIT's: debian/control's Maintainer and
# the trailer of every debian/changelog entry name the same (dpkg reads
# them before configure runs, so they cannot be made from it; the man
# pages and --version are).  The licence: LICENSE is BSD-3-Clause, and
# debian/copyright says so.
one_address() {
    local want maint trailers other
    want=$(sed -n 's/^PACKAGE_BUGREPORT = //p' "$BUILD/Makefile")
    [[ $want == *@* ]] || { echo "AC_INIT names no bug-report address ('$want')"; return 1; }
    maint=$(sed -n 's/^Maintainer: .*<\(.*\)>$/\1/p' "$TOP/debian/control")
    [[ $maint == "$want" ]] || { echo "debian/control: Maintainer <$maint>, AC_INIT <$want>"; return 1; }
    trailers=$(grep -c '^ -- ' "$TOP/debian/changelog")
    other=$(grep '^ -- ' "$TOP/debian/changelog" | grep -vF "<$want>")
    ((trailers > 0)) && [[ -z $other ]] || { echo "debian/changelog: $other"; return 1; }
    grep -q '^Copyright (c) 2026 the migr developers$' "$TOP/LICENSE" &&
        grep -q '^3\. Neither the name of the copyright holder' "$TOP/LICENSE" || { echo "LICENSE is not BSD-3-Clause"; return 1; }
    grep -q '^License: BSD-3-clause$' "$TOP/debian/copyright" || { echo "debian/copyright names no BSD-3-clause"; return 1; }
    echo "AC_INIT, debian/control and debian/changelog: <$want>"
}
run_case "dist: one project address (AC_INIT's) in debian/control and debian/changelog; LICENSE BSD-3-Clause" 10 one_address

# --- a staged installation ---
STAGE=$SCRATCH/stage
if ! bmake install DESTDIR="$STAGE" >"$SCRATCH/install.log" 2>&1; then
    fail "dist: make install DESTDIR" "$(tail -n 3 "$SCRATCH/install.log" | tr '\n' '|')"
    exit 0
fi
COMPDIR=$STAGE$(mkvalue ompicomponentdir) LIBDIR=$STAGE$(mkvalue libdir) INCDIR=$STAGE$(mkvalue includedir)

components_without_la() {
    local so la
    so=$(cd "$COMPDIR" && ls mca_*.so 2>/dev/null | tr '\n' ' ')
    la=$(cd "$COMPDIR" && ls ./*.la 2>/dev/null | tr '\n' ' ')
    echo "in $COMPDIR: ${so:-no .so} ${la}"
    [[ $so == *mca_btl_dicom.so* && $so == *mca_odls_migr.so* && -z $la ]]
}
run_case "install: the components' .so and no .la in the component directory" 10 components_without_la

docs_installed() {
    local docdir f
    docdir=$STAGE$(mkvalue docdir)
    for f in LICENSE json-schema.md migrd.service cluster.conf.example; do
        [[ -s $docdir/$f ]] || { echo "no $docdir/$f"; return 1; }
    done
    cmp -s "$docdir/LICENSE" "$TOP/LICENSE" || { echo "$docdir/LICENSE is not LICENSE"; return 1; }
}
run_case "install: LICENSE, json-schema.md, the unit and the example map in docdir" 10 docs_installed

pc_flags() {
    local cflags libs
    export PKG_CONFIG_PATH=$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE
    [[ $(pkg-config --modversion migr-dicom) == "$VERSION" ]] ||
        { echo "modversion $(pkg-config --modversion migr-dicom), not $VERSION"; return 1; }
    read -r cflags < <(pkg-config --cflags migr-dicom)
    read -r libs < <(pkg-config --libs migr-dicom)
    echo "cflags '$cflags' libs '$libs'"
    # the system's include and lib directories are left out by pkg-config
    [[ $cflags == "-I$INCDIR" || ( -z $cflags && $INCDIR == "$STAGE/usr/include" ) ]] || return 1
    [[ $libs == *-lmigr-dicom* ]] || return 1
    [[ -f $INCDIR/migr/dicom.h ]] || { echo "no $INCDIR/migr/dicom.h"; return 1; }
    # a client built with those flags alone, run against the staged library
    cat >"$SCRATCH/client.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <migr/dicom.h>
int main(void)
{
    dicom_open_opts_t o = {.socket_path = "/nonexistent/migrd.sock", .timeout_ms = 200};
    dicom_mbox_t *mb;
    int rc = dicom_open((dicom_addr_t){1, 0}, &o, &mb);
    printf("api %d: dicom_open: %d (%s)\n", DICOM_API_VERSION, rc, dicom_last_error());
    return rc == -ENOENT || rc == -ECONNREFUSED ? 0 : 1;
}
EOF
    # shellcheck disable=SC2086 # the flags are words
    cc -Wall -Werror -o "$SCRATCH/client" "$SCRATCH/client.c" $cflags $libs || return 1
    LD_LIBRARY_PATH=$LIBDIR "$SCRATCH/client"
}
run_case "install: migr-dicom.pc's flags build a client of <migr/dicom.h> that links libmigr-dicom" 60 pc_flags

ompi_info_version() {
    local out
    out=$(OMPI_MCA_mca_base_component_path=$COMPDIR ompi_info 2>&1 | grep -E 'MCA (btl: dicom|odls: migr) ')
    echo "$out"
    [[ $(grep -c "Component v$VERSION)" <<<"$out") == 2 ]]
}
if command -v ompi_info >/dev/null; then
    run_case "install: ompi_info lists btl dicom and odls migr with migr's version $VERSION" 60 ompi_info_version
else
    skip "install: ompi_info lists the components" "no ompi_info"
fi

notice() {
    local out
    out=$(sh "$TOP/contrib/ompi-component-path.sh" /opt/x/lib/openmpi "$(mkvalue OMPI_SYS_COMPONENTDIR)" /etc/openmpi)
    echo "$out"
    grep -q 'OMPI_MCA_mca_base_component_path=/opt/x/lib/openmpi:SYS_DEFAULT' <<<"$out" &&
        grep -q 'mca_base_component_path = /opt/x/lib/openmpi:SYS_DEFAULT' <<<"$out" &&
        sh "$TOP/contrib/ompi-component-path.sh" /a /a /etc | grep -q 'no settings'
}
run_case "install: components outside Open MPI's directory come with how to point Open MPI there" 10 notice
