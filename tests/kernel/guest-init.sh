#!/bin/bash
# PID 1 of the check-kernel guest (tests/kernel/run.sh): the root filesystem is the read-only
# 9p share of the cached image, /repo this repository (read-only), /out the run's output
# directory on the host. Sets up the rest of a minimal system (no systemd, no udevd), loads
# rbd, nbd, dm-crypt and loop, runs tests/kernel/guest-run.sh with its output on the console and in
# /out/guest.log, writes its exit code to /out/rc and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 HOME=/root PYTHONDONTWRITEBYTECODE=1
exec </dev/null >/dev/console 2>&1

mount -t proc proc /proc
mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
for d in /tmp /run /var/tmp /var/log /var/lib /root /mnt /etc/ceph; do
	mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp
mkdir -p /dev/pts /dev/shm /run/lock
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
ip link set lo up
hostname rbdcsi-guest

echo "guest: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 / 1024 " MiB"}' /proc/meminfo)"
rc=0
# libceph's softdep on crc32c is not in modules.dep.
for m in crc32c_generic rbd "nbd nbds_max=16" dm_crypt loop; do
	# shellcheck disable=SC2086
	modprobe $m || {
		echo "guest: modprobe $m failed"
		rc=1
	}
done
if [ "$rc" -eq 0 ]; then
	/repo/tests/kernel/guest-run.sh 2>&1 | tee /out/guest.log
	rc=${PIPESTATUS[0]}
fi
echo "guest: done, exit code $rc"
echo "$rc" >/out/rc
sync
echo o >/proc/sysrq-trigger
sleep 30
