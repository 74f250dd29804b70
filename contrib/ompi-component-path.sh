#!/bin/sh
# ompi-component-path.sh DIR OMPI_COMPONENT_DIR OMPI_SYSCONFDIR
#
# Says how to point Open MPI at migr's MCA components installed in DIR
# (printed at the end of configure and by make install).  Nothing to say
# when DIR is Open MPI's own component directory: it is searched anyway.
dir=$1 sysdir=$2 sysconfdir=$3
if [ "$dir" = "$sysdir" ]; then
    echo "migr: MCA components in Open MPI's own directory $dir (found with no settings)"
    exit 0
fi
cat <<EOT
migr: the MCA components are in $dir, which Open MPI does not search by
migr: itself. Point it there, for one user or job:
migr:     export OMPI_MCA_mca_base_component_path=$dir:SYS_DEFAULT
migr: or for every user, in $sysconfdir/openmpi-mca-params.conf:
migr:     mca_base_component_path = $dir:SYS_DEFAULT
migr: (keep SYS_DEFAULT, or Open MPI loses its own components); then
migr: 'ompi_info | grep -e dicom -e migr' lists them.
EOT
