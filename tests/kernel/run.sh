#!/usr/bin/env bash
# make check-kernel: the krbd and rbd-nbd data paths on a real Debian kernel, in qemu (TCG).
#
#   tests/kernel/run.sh [TEST...]      (as root; TEST: names for tests/kernel/test_kernel.py,
#                                       or "sanity": csi-sanity only, or "bench": the
#                                       staging latency, copied to $RBDCSI_KERNEL_BENCH_OUT)
#
# Everything comes from Debian packages: the kernel is the linux-image-* package that
# linux-image-amd64 depends on (apt-get download, never installed on the host), the guest's
# root filesystem is built by mmdebstrap with Ceph, rbd-nbd, e2fsprogs, xfsprogs, the runtime
# libraries of rbdcsi and python3-grpcio. The root filesystem, kernel and initramfs are cached
# under $RBDCSI_VM_CACHE (/var/cache/rbdcsi-vm) keyed by the package list and the kernel
# version, so a warm run builds nothing.
#
# The guest gets three 9p shares: its root (read-only, the cache), this repository (read-only:
# the host-built build/rbdcsi, build/py, build/tools/csi-sanity and the tests) and a per-run
# output directory (writable: the guest's log and exit code come back there). It has no
# network device: the throwaway Ceph (tests/ceph/ceph-up.sh), rbdcsi and the tests run on the
# guest's own loopback. The guest's progress is on its serial console (console.log).
#
# Bounded in time: qemu runs under timeout (RBDCSI_VM_TIMEOUT, default 1500 s); the guest
# runner bounds each step too. On every exit path the trap stops qemu and removes the run
# directory (kept with RBDCSI_VM_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOP=$(pwd)
B=${B:-build}
CACHE=${RBDCSI_VM_CACHE:-/var/cache/rbdcsi-vm}
VM_TIMEOUT=${RBDCSI_VM_TIMEOUT:-1500}
VM_MEM=${RBDCSI_VM_MEM:-3072}
SUITE=bookworm
# Bump when the way the cached files are built changes.
RECIPE=3

GUEST_PACKAGES=(
	# the throwaway Ceph, the CLI (for checks), the nbd mapper
	ceph-mon ceph-osd ceph-common rbd-nbd
	# the node data path
	e2fsprogs xfsprogs util-linux fdisk kmod iproute2 procps uuid-runtime
	# runtime libraries of build/rbdcsi (ldd) and what it dlopens (librados/librbd come
	# with ceph-common; libmicrohttpd for /metrics)
	libgrpc29 libprotobuf-c1 libjson-c5 libssl3 libudev1 libblkid1 libmount1 libmicrohttpd12
	libcryptsetup12 cryptsetup-bin
	# the test client; cmocka for the unit tests that need dm-crypt (test_crypt)
	python3 python3-grpcio python3-protobuf libcmocka0
)
HOST_PACKAGES=(qemu-system-x86 mmdebstrap busybox-static cpio kmod)
# Modules the initramfs loads to mount the 9p root, in dependency order.
INITRD_MODULES=(
	kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
	kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko
	kernel/drivers/virtio/virtio_pci.ko kernel/net/9p/9pnet.ko kernel/net/9p/9pnet_virtio.ko
	kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko kernel/fs/9p/9p.ko
)

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
secs() { printf '%d.%d' $((($(now_us) - $1) / 1000000)) $((($(now_us) - $1) % 1000000 / 100000)); }
log() { echo "check-kernel: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
T0=$(now_us)

[[ ${EUID} -eq 0 ]] || die "needs root (mmdebstrap, 9p passthrough of the guest's root)"

RUN=""
QEMU_PID=""
BUILD_TMP=""
cleanup() {
	local rc=$?
	if [[ -n ${QEMU_PID} ]] && kill -0 "${QEMU_PID}" 2>/dev/null; then
		kill -TERM "${QEMU_PID}" 2>/dev/null || true
		sleep 1
		kill -KILL "${QEMU_PID}" 2>/dev/null || true
		wait "${QEMU_PID}" 2>/dev/null || true
	fi
	[[ -n ${BUILD_TMP} ]] && rm -rf "${BUILD_TMP}"
	if [[ -n ${RUN} && -d ${RUN} ]]; then
		if [[ ${RBDCSI_VM_KEEP:-0} == 1 || ${rc} -ne 0 ]]; then
			log "run directory kept: ${RUN}"
		else
			rm -rf "${RUN}"
		fi
	fi
	exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Host tools, the kernel package, the cache key

tests/deps.sh "${HOST_PACKAGES[@]}" >&2
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [[ -z ${kpkg} ]]; then
	apt-get -o DPkg::Lock::Timeout=300 -q update >&2
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
[[ ${kpkg} =~ ^linux-image-([0-9][A-Za-z0-9.+-]*)$ ]] || die "no linux-image package found"
KVER=${BASH_REMATCH[1]}
kdebver=$(apt-cache policy "${kpkg}" | awk '/Candidate:/ { print $2 }')
key=$(printf '%s\n' "${RECIPE}" "${SUITE}" "${kpkg}=${kdebver}" "${GUEST_PACKAGES[@]}" |
	sha256sum | cut -c1-16)
VM=${CACHE}/vm-${key}
log "kernel ${kpkg} ${kdebver}; guest image ${VM}"

# ---------------------------------------------------------------------------------------------
# Build the guest (once per key)

build_vm() {
	local t
	BUILD_TMP=$(mktemp -d "${CACHE}/.build-${key}.XXXXXX")
	t=$(now_us)
	log "building the guest root filesystem (mmdebstrap ${SUITE}, ${#GUEST_PACKAGES[@]} packages)"
	nice -n 10 mmdebstrap --variant=minbase --quiet \
		--include="$(
			IFS=,
			echo "${GUEST_PACKAGES[*]}"
		)" \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		"${SUITE}" "${BUILD_TMP}/root" >&2 || die "mmdebstrap failed"
	log "root filesystem in $(secs "${t}") s"

	t=$(now_us)
	(cd "${BUILD_TMP}" && apt-get download -q "${kpkg}" >&2) || die "apt-get download ${kpkg} failed"
	dpkg-deb -x "${BUILD_TMP}"/linux-image-*.deb "${BUILD_TMP}/kernel"
	cp "${BUILD_TMP}/kernel/boot/vmlinuz-${KVER}" "${BUILD_TMP}/vmlinuz"
	mkdir -p "${BUILD_TMP}/root/lib/modules"
	cp -a "${BUILD_TMP}/kernel/lib/modules/${KVER}" "${BUILD_TMP}/root/lib/modules/"
	depmod -b "${BUILD_TMP}/root" "${KVER}"
	mkdir -p "${BUILD_TMP}/root/repo" "${BUILD_TMP}/root/out"
	rm -f "${BUILD_TMP}/root/etc/hostname"

	rm -rf "${BUILD_TMP}/kernel" "${BUILD_TMP}"/*.deb
	log "kernel in $(secs "${t}") s"
	rm -rf "${VM}"
	mv "${BUILD_TMP}" "${VM}"
	BUILD_TMP=""
	log "guest built in $(secs "${T0}") s: ${VM} ($(du -sh "${VM}" | cut -f1))"
}

mkdir -p "${CACHE}"
exec {LOCK_FD}>"${CACHE}/.lock"
flock -w 1800 "${LOCK_FD}" || die "timed out waiting for ${CACHE}/.lock"
if [[ ! -f ${VM}/vmlinuz ]]; then
	# Older keys' images are of no further use.
	for old in "${CACHE}"/vm-* "${CACHE}"/.build-*; do
		[[ -e ${old} && ${old} != "${VM}" ]] && rm -rf "${old}"
	done
	build_vm
else
	log "guest image cached (warm)"
fi
exec {LOCK_FD}>&- # runs side by side share the image read-only

# The initramfs (rebuilt each run: under a second): busybox, the virtio and 9p modules of the
# guest's kernel, an init that mounts the shares and hands over to tests/kernel/guest-init.sh
# of the shared repository. Any failure there powers the guest off.
build_initrd() {
	local k=$1/initrd m
	mkdir -p "${k}"/{bin,dev,proc,sys,newroot,lib/modules}
	cp /bin/busybox "${k}/bin/busybox"
	for m in "${INITRD_MODULES[@]}"; do
		[[ -f ${VM}/root/lib/modules/${KVER}/${m} ]] || die "kernel has no ${m}"
		cp "${VM}/root/lib/modules/${KVER}/${m}" "${k}/lib/modules/"
	done
	{
		echo '#!/bin/busybox sh'
		echo '/bin/busybox --install -s /bin'
		echo 'fail() { echo "initrd: $*"; echo o >/proc/sysrq-trigger; sleep 30; }'
		echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
		for m in "${INITRD_MODULES[@]}"; do
			echo "insmod /lib/modules/${m##*/} || fail insmod ${m##*/}"
		done
		echo 'o=trans=virtio,version=9p2000.L,msize=262144'
		echo 'mount -t 9p -o $o,ro,cache=loose root /newroot || fail no root share'
		echo 'mount -t 9p -o $o,ro repo /newroot/repo || fail no repo share'
		echo 'mount -t 9p -o $o out /newroot/out || fail no out share'
		echo 'umount /proc /sys; mount --move /dev /newroot/dev'
		echo 'exec switch_root /newroot /repo/tests/kernel/guest-init.sh'
		echo 'fail switch_root'
	} >"${k}/init"
	chmod 0755 "${k}/init"
	(cd "${k}" && find . | cpio -o -H newc --quiet | gzip -1) >"$1/initrd.gz"
	rm -rf "${k}"
}

# ---------------------------------------------------------------------------------------------
# What the guest runs: the host-built binary, the python stubs, csi-sanity

[[ -x ${B}/rbdcsi ]] || die "${B}/rbdcsi is not built (make all)"
if [[ ! -f build/py/csi_pb2_grpc.py || build/proto/csi.proto -nt build/py/csi_pb2.py ]]; then
	mkdir -p build/py
	/usr/bin/python3 -m grpc_tools.protoc -Ibuild/proto -I/usr/include --python_out=build/py \
		--grpc_python_out=build/py build/proto/csi.proto
fi

# ---------------------------------------------------------------------------------------------
# Boot

RUN=$(mktemp -d /tmp/rbdcsi-vm.XXXXXX)
chmod 0755 "${RUN}"
mkdir -p "${RUN}/out"
build_initrd "${RUN}"
printf '%s\n' "$@" >"${RUN}/out/tests"
echo "${B}" >"${RUN}/out/build-dir"
log "booting (timeout ${VM_TIMEOUT} s, ${VM_MEM} MiB, TCG); console: ${RUN}/console.log"
t_boot=$(now_us)
nice -n 10 qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "${VM_MEM}" \
	-display none -monitor none -no-reboot -nic none \
	-serial "file:${RUN}/console.log" \
	-kernel "${VM}/vmlinuz" -initrd "${RUN}/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 loglevel=4" \
	-virtfs "local,path=${VM}/root,mount_tag=root,security_model=passthrough,readonly=on,id=root" \
	-virtfs "local,path=${TOP},mount_tag=repo,security_model=none,readonly=on,id=repo" \
	-virtfs "local,path=${RUN}/out,mount_tag=out,security_model=none,id=out" \
	</dev/null >"${RUN}/qemu.log" 2>&1 &
QEMU_PID=$!
# Progress: the guest runner's lines that start with "guest:" as they come.
( tail -n +1 -F --pid="${QEMU_PID}" "${RUN}/console.log" 2>/dev/null |
	grep --line-buffered -E '^(guest|ceph-up: ready|ok|FAIL|ERROR|test_|Ran |csi-sanity:)' >&2 ) &
TAIL_PID=$!
deadline=$(($(now_us) + VM_TIMEOUT * 1000000))
while kill -0 "${QEMU_PID}" 2>/dev/null; do
	if (($(now_us) > deadline)); then
		log "ERROR: the guest did not finish within ${VM_TIMEOUT} s; stopping it"
		break
	fi
	sleep 1
done
if kill -0 "${QEMU_PID}" 2>/dev/null; then
	kill -KILL "${QEMU_PID}" 2>/dev/null || true
fi
wait "${QEMU_PID}" 2>/dev/null || true
QEMU_PID=""
wait "${TAIL_PID}" 2>/dev/null || true
boot_s=$(secs "${t_boot}")

rc=1
if [[ -f ${RUN}/out/rc ]]; then
	rc=$(<"${RUN}/out/rc")
	[[ ${rc} =~ ^[0-9]+$ ]] || rc=1
else
	log "ERROR: the guest wrote no result; last console lines:"
	tail -n 40 "${RUN}/console.log" >&2 || true
	tail -n 5 "${RUN}/qemu.log" >&2 || true
fi
if [[ -f ${RUN}/out/summary ]]; then
	cat "${RUN}/out/summary"
fi
if [[ ${rc} -ne 0 && -f ${RUN}/out/guest.log ]]; then
	log "guest log tail (${RUN}/out/guest.log):"
	tail -n 60 "${RUN}/out/guest.log" >&2
fi
if [[ -n ${RBDCSI_KERNEL_BENCH_OUT:-} && -f ${RUN}/out/bench.json ]]; then
	cp "${RUN}/out/bench.json" "${RBDCSI_KERNEL_BENCH_OUT}"
fi
log "VM ran ${boot_s} s; total $(secs "${T0}") s; guest exit code ${rc}"
exit "${rc}"
