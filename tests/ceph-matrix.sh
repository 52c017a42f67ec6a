#!/usr/bin/env bash
# The Ceph release matrix (issue 16): the integration tests and csi-sanity against another Ceph
# release than the host's, with the driver built against that release's client libraries.
#
#   [RBDCSI_MATRIX_TESTS="test_x ..."|all] tests/ceph-matrix.sh [trixie]
#                                      as root; `make check` runs it after the host's own run
#
# trixie = Debian 13: Ceph 18.2 (reef) daemons, librados/librbd 18.2, its gcc, gRPC and json-c.
# The root filesystem comes from Debian's archive with mmdebstrap (nice -n 10), cached as a
# tarball under ${RBDCSI_MATRIX_CACHE:-/var/cache/rbdcsi-matrix} (keyed by the package list), and
# unpacked into a fresh directory for each run. The tests run in a chroot that shares the host's
# network namespace: the throwaway cluster (tests/ceph/ceph-up.sh inside) listens on 127.0.0.1
# only. The source tree (git ls-files, plus the fetched build/proto/csi.proto) is copied in, so the
# host's build/ is never touched. Ends with "ceph-matrix <suite>: OK" or a failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=${1:-trixie}
CACHE=${RBDCSI_MATRIX_CACHE:-/var/cache/rbdcsi-matrix}
MIRROR=${RBDCSI_MATRIX_MIRROR:-http://deb.debian.org/debian}

if [[ ${EUID} -ne 0 ]]; then
	echo "ceph-matrix: SKIPPED: needs root (chroot, mounts)" >&2
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi
# The suites run against the other release. By default the ones that exercise what differs
# between Ceph releases (librbd/librados calls, cls_rbd, image features, rbd-fuse) and fit the CI
# budget: controller, snapshots and clones, node staging, ceph-csi compatibility, and all of
# csi-sanity. RBDCSI_MATRIX_TESTS=all runs every tests/integration/test_*.py (needs the
# services the full list installs: postgresql, valgrind — add them to HOST_ONLY's complement).
TESTS=${RBDCSI_MATRIX_TESTS:-test_controller test_snapshot test_node test_compat}
[[ ${TESTS} == all ]] && TESTS=""
case ${SUITE} in
trixie) ;;
*)
	echo "ceph-matrix: unknown suite '${SUITE}' (trixie)" >&2
	exit 2
	;;
esac

# What tests/deps.sh installs on the host (read from its PACKAGES list, so a new build or test
# dependency reaches the chroot too), without the lint tools and the services only the suites
# left out below need, plus what a minimal root lacks that the tests call (ps, ip, modprobe).
HOST_ONLY=" clang-format cppcheck valgrind postgresql git curl unzip "
PACKAGES=()
while read -r p; do
	[[ -n ${p} && ${HOST_ONLY} != *" ${p} "* ]] && PACKAGES+=("${p}")
done < <(sed -n '/^PACKAGES=(/,/^)/p' "${ROOT}/tests/deps.sh" | sed -e '1d;$d' -e 's/#.*//' | tr -s ' \t' '\n\n')
PACKAGES+=(procps iproute2 kmod)
[[ ${#PACKAGES[@]} -gt 20 ]] || {
	echo "ceph-matrix: could not read the package list from tests/deps.sh" >&2
	exit 1
}
list=$(printf '%s,' "${PACKAGES[@]}")
key=$(printf '%s %s %s' "${SUITE}" "${MIRROR}" "${list}" | sha256sum | cut -c1-12)
tarball=${CACHE}/${SUITE}-${key}.tar
mkdir -p "${CACHE}"
if [[ ! -s ${tarball} ]]; then
	echo "ceph-matrix: building the ${SUITE} root filesystem (cached as ${tarball})"
	"${ROOT}/tests/deps.sh" mmdebstrap >&2
	# A killed earlier build may have left its partial output: never delete through a mount.
	if ! grep -q " ${CACHE}/" /proc/self/mounts; then rm -rf "${tarball}.tmp"; fi
	nice -n 10 mmdebstrap --variant=apt --format=tar --include="${list%,}" "${SUITE}" "${tarball}.tmp" \
		"${MIRROR}"
	mv "${tarball}.tmp" "${tarball}"
	# Roots of older package lists are never used again.
	find "${CACHE}" -maxdepth 1 -name "${SUITE}-*.tar" ! -path "${tarball}" -delete
fi

sanity=${CSI_SANITY:-$(ls "${ROOT}"/build/tools/csi-sanity-* 2>/dev/null | head -1)}
[[ -x ${sanity} ]] || {
	echo "ceph-matrix: no csi-sanity binary (make builds build/tools/csi-sanity-*)" >&2
	exit 1
}
[[ -f ${ROOT}/build/proto/csi.proto ]] || make -C "${ROOT}" --no-print-directory proto >/dev/null

dir=$(mktemp -d /var/tmp/rbdcsi-matrix.XXXXXX)
mounted=()
cleanup() {
	local rc=$? m p
	# A process still running inside the root (e.g. a driver a failed test left) would keep its
	# mounts busy: named, then ended by its pid. Only processes of this run's root match.
	for p in /proc/[0-9]*; do
		[[ $(readlink "${p}/root" 2>/dev/null) == "${dir}" ]] || continue
		echo "ceph-matrix: ending leftover pid ${p#/proc/}: $(tr '\0' ' ' <"${p}/cmdline" | cut -c1-120)" >&2
		kill -KILL "${p#/proc/}" 2>/dev/null || true
	done
	sleep 1
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		m=${mounted[i]}
		umount -R "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true
	done
	# Only if nothing is mounted below it any more: never delete through a mount.
	if ! grep -q " ${dir}/" /proc/self/mounts; then
		rm -rf "${dir}"
	else
		echo "ceph-matrix: ${dir} still has mounts, left in place" >&2
	fi
	exit ${rc}
}
trap cleanup EXIT
tar -C "${dir}" -xf "${tarball}"
mkdir -p "${dir}/src/build/proto"
git -C "${ROOT}" ls-files -z | (cd "${ROOT}" && tar --null -T - -cf -) | tar -C "${dir}/src" -xf -
cp "${ROOT}/build/proto/csi.proto" "${dir}/src/build/proto/"
install -m 0755 "${sanity}" "${dir}/usr/local/bin/csi-sanity"
for m in proc sys dev; do
	mkdir -p "${dir}/${m}"
	mount --rbind "/${m}" "${dir}/${m}"
	mount --make-rslave "${dir}/${m}"
	mounted+=("${dir}/${m}")
done
mount -t tmpfs tmpfs "${dir}/tmp"
mounted+=("${dir}/tmp")

echo "ceph-matrix ${SUITE}: $(chroot "${dir}" dpkg-query -W -f='ceph ${Version}, ' ceph-mon)$(chroot "${dir}" dpkg-query -W -f='librbd ${Version}' librbd1)"
# shellcheck disable=SC2016
chroot "${dir}" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI="${CI:-}" \
	TESTS="${TESTS}" bash -c 'cd /src && make -j2 --no-print-directory all &&
		B=build CSI_SANITY=/usr/local/bin/csi-sanity tests/run-integration.sh ${TESTS}'
echo "ceph-matrix ${SUITE}: OK"
