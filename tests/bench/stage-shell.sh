#!/usr/bin/env bash
# The staging floor for make bench: what NodeStage + NodePublish + NodeUnpublish + NodeUnstage
# do with the rbd-fuse mapper, done by hand with the same tools, K times.
#
#   stage-shell.sh K MONITORS USER POOL IMAGE WORKDIR     (the cephx key on stdin, one line)
#
# Per cycle: rbd-fuse -r IMAGE (key on fd 3, as the driver passes it), wait for the mount (in
# /proc/self/mountinfo, as the driver does) and check the image file once, losetup, blkid -p
# (mkfs.ext4 only when blank: the first cycle), mount, bind mount, umount the bind, umount,
# losetup -d, umount the FUSE mount, wait for rbd-fuse to exit.
# Output: {"cycles_ms":[...]} on stdout. Needs root. Leaves nothing behind, also on failure.
set -euo pipefail
unset CEPH_ARGS

K=$1 MON=$2 USER_ID=$3 POOL=$4 IMAGE=$5 DIR=$6
FUSE_DIR=${DIR}/fuse
STAGING=${DIR}/staging
TARGET=${DIR}/target
FUSE_PID=
LOOP=

cleanup() {
	local rc=$?
	set +e
	mountpoint -q "${TARGET}" 2>/dev/null && umount "${TARGET}"
	mountpoint -q "${STAGING}" 2>/dev/null && umount "${STAGING}"
	[[ -n ${LOOP} ]] && losetup -d "${LOOP}" 2>/dev/null
	mountpoint -q "${FUSE_DIR}" 2>/dev/null && umount "${FUSE_DIR}"
	if [[ -n ${FUSE_PID} ]] && kill -0 "${FUSE_PID}" 2>/dev/null; then
		kill "${FUSE_PID}" 2>/dev/null
		wait "${FUSE_PID}" 2>/dev/null
	fi
	rmdir "${TARGET}" "${STAGING}" "${FUSE_DIR}" 2>/dev/null
	rm -f "${DIR}/fuse.log"
	exit "${rc}"
}
trap cleanup EXIT

# The key: rbd-fuse reads --keyfile by size, so a pipe will not do; the driver uses a sealed
# memfd. The nearest a shell gets: a file in tmpfs, opened on fd 3 and unlinked at once. printf
# is a builtin: the key is in no argv.
IFS= read -r KEY
KEY_FILE=$(mktemp /dev/shm/rbdcsi-bench-key.XXXXXX)
printf '%s' "${KEY}" >"${KEY_FILE}"
exec 3<"${KEY_FILE}"
rm -f "${KEY_FILE}"
unset KEY

# A sleep that forks nothing: read with a timeout on a pipe nobody writes.
exec {SLEEP_FD}<> <(:)
nap() { read -r -t "$1" -u "${SLEEP_FD}" _ || true; }

# True when FUSE_DIR is an rbd-fuse mount (read with builtins: no process per poll).
fuse_mounted() {
	local line f
	while IFS= read -r line; do
		read -r -a f <<<"${line}"
		[[ ${f[4]} == "${FUSE_DIR}" && ${line} == *" - fuse.rbd-fuse "* ]] && return 0
	done </proc/self/mountinfo
	return 1
}

# Sets NOW to the wall clock in microseconds (no subshell).
now_us() {
	local t=${EPOCHREALTIME}
	NOW=${t/./}
}

mkdir -p "${FUSE_DIR}" "${STAGING}"
cycles=()
for ((c = 0; c < K; c++)); do
	now_us
	t0=${NOW}

	# Stage: map.
	rbd-fuse -c /dev/null --mon-host "${MON}" --id "${USER_ID}" --keyfile=/dev/fd/3 \
		--keyring= --admin-socket= --log-file="${DIR}/fuse.log" --client-mount-timeout=60 \
		-p "${POOL}" -r "${IMAGE}" "${FUSE_DIR}" -f </dev/null >/dev/null 2>&1 &
	FUSE_PID=$!
	now_us
	deadline=$((NOW + 60000000))
	# Wait for the mount in the mount table, as the driver does: every lookup of a path inside
	# the mount makes rbd-fuse list the whole pool (rbd_list), so polling with stat would cost
	# the shell more than the driver. Then one check of the image file.
	until fuse_mounted; do
		kill -0 "${FUSE_PID}" 2>/dev/null || {
			echo "stage-shell: rbd-fuse exited" >&2
			exit 1
		}
		now_us
		((NOW < deadline)) || {
			echo "stage-shell: rbd-fuse did not mount" >&2
			exit 1
		}
		nap 0.001
	done
	[[ -f ${FUSE_DIR}/${IMAGE} ]] || {
		echo "stage-shell: ${FUSE_DIR}/${IMAGE} missing" >&2
		exit 1
	}
	LOOP=$(losetup --find --show "${FUSE_DIR}/${IMAGE}")
	# Format only when blank (blkid -p exits 2 when it finds nothing).
	rc=0
	blkid -p "${LOOP}" >/dev/null 2>&1 || rc=$?
	if ((rc == 2)); then
		mkfs.ext4 -q -m0 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "${LOOP}"
	elif ((rc != 0)); then
		echo "stage-shell: blkid -p ${LOOP} failed (${rc})" >&2
		exit 1
	fi
	mount -t ext4 "${LOOP}" "${STAGING}"

	# Publish, unpublish.
	mkdir -p "${TARGET}"
	mount --bind "${STAGING}" "${TARGET}"
	umount "${TARGET}"
	rmdir "${TARGET}"

	# Unstage.
	umount "${STAGING}"
	losetup -d "${LOOP}"
	LOOP=
	umount "${FUSE_DIR}"
	wait "${FUSE_PID}"
	FUSE_PID=

	now_us
	printf -v ms '%d.%03d' $(((NOW - t0) / 1000)) $(((NOW - t0) % 1000))
	cycles+=("${ms}")
done

(
	IFS=,
	echo "{\"cycles_ms\":[${cycles[*]}]}"
)
