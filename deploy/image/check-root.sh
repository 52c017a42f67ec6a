#!/bin/sh
# Run inside the image's root filesystem, by deploy/image/build.sh (make image, in a chroot)
# and by deploy/Containerfile (a RUN step): fails the build, rather than a pod start, when the
# binary cannot find a library it links or loads, or a tool the node plugin runs is missing.
set -eu
if ldd /usr/bin/rbdcsi | grep 'not found'; then
	exit 1
fi
/usr/bin/rbdcsi --help >/dev/null
# Loaded with dlopen, so ldd of the binary does not see them (driver/ceph/ceph_lib.h,
# plugin/metrics.c, plugin/kube_api.c).
for so in librados.so.2 librbd.so.1 libmicrohttpd.so.12 libcurl.so.4; do
	lib=$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')
	[ -n "$lib" ] || {
		echo "$so: not found by ldconfig"
		exit 1
	}
	if ldd "$lib" | grep 'not found'; then
		exit 1
	fi
done
# What the node plugin runs (driver/host/).
for t in mkfs.ext4 e2fsck resize2fs mkfs.xfs xfs_growfs mount umount rbd-fuse rbd-nbd modprobe; do
	command -v "$t" >/dev/null || {
		echo "$t: not on PATH"
		exit 1
	}
done
echo "check-root: ok"
