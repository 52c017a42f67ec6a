#!/usr/bin/env bash
# Check the container runtime pieces of the Kubernetes e2e test on this machine, without
# Kubernetes: install the packages if missing, build the three images, start our own containerd
# (lib.sh), import the images, run containers with `ctr run`, stop, clean up, and check that
# nothing is left.
#
#   tests/e2e-k8s/runtime/verify.sh
#
# Uses its own directories, socket, bridge and CNI network name, so it can run beside a real
# e2e run: E2E dir ${VERIFY_E2E_DIR:-/var/lib/rbdcsi-e2e-verify}, run dir
# ${VERIFY_RUN_DIR:-/run/rbdcsi-e2e-verify}; images are built into E2E_DIR/images, or into
# VERIFY_IMAGES_DIR (kept, so build.sh can skip unchanged images). Re-runnable after a crash: it
# first cleans what its own pidfile, socket, runc root and directories name. Needs root.
# Checks:
#   pause     localhost/pause:e2e runs detached and exits on SIGTERM
#   busybox   write a file to a bind-mounted /data, sync, read it back, md5sum, df, stat -f
#   block     dd to and from a loop device passed with --device, blockdev --getsize64
#   postgres  as uid 999 (the image's User): initdb on a bind-mounted /data, start, create a
#             table, insert, stop, start, select and check the rows, stop; SIGKILL a container
#             whose server runs, then start again in a new one and find the rows; and the
#             image's default command (the selftest in /tmp, on overlayfs)
#   cri       the CRI plugin took our CNI conf_dir and sandbox image, and loaded our conflist
#   clean     after rt_clean: no process, mount, loop device, bridge or directory of ours left
# Ends with "N passed, N failed"; exit status 0 iff none failed.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
. "${HERE}/lib.sh"

[[ $(id -u) == 0 ]] || {
	echo "verify: needs root" >&2
	exit 1
}

RT_BRIDGE=rbdcsiverify0
RT_NET_NAME=rbdcsiverify
rt_setup "${VERIFY_E2E_DIR:-/var/lib/rbdcsi-e2e-verify}" "${VERIFY_RUN_DIR:-/run/rbdcsi-e2e-verify}"
IMAGES=${VERIFY_IMAGES_DIR:-${RT_E2E}/images} # a VERIFY_IMAGES_DIR is kept (build.sh cache)
WORK=${RT_E2E}/verify
LOOP_RECORD=${RT_RUN}/verify-loop

now_ms() { local t=${EPOCHREALTIME}; echo $((${t/./} / 1000)); }
T_START=$(now_ms)
PASSED=0
FAILED=0
TIMES=()
log() { echo "verify: $*" >&2; }
pass() {
	PASSED=$((PASSED + 1))
	echo "PASS: $*"
}
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL: $*"
}
# timed LABEL CMD...: run CMD, record its time under LABEL; returns CMD's status.
timed() {
	local label=$1 t rc=0
	shift
	t=$(now_ms)
	"$@" || rc=$?
	TIMES+=("${label}=$(($(now_ms) - t))ms")
	return "${rc}"
}

# capture LABEL CMD...: timed, with stdout+stderr kept in $out (and shown indented).
capture() {
	timed "$@" >"${WORK}/out" 2>&1 || true
	out=$(<"${WORK}/out")
	sed 's/^/  /' "${WORK}/out"
}

# verify_clean: detach our loop device, remove everything rt_start and this script made.
verify_clean() {
	local dev
	if [[ -e ${WORK}/disk.img ]]; then
		for dev in $(losetup -j "${WORK}/disk.img" -O NAME -n 2>/dev/null); do
			losetup -d "${dev}" || true
		done
	fi
	rm -f "${LOOP_RECORD}"
	rm -rf "${WORK}"
	[[ -n ${VERIFY_IMAGES_DIR:-} ]] || rm -rf "${IMAGES}"
	rt_clean
}

on_exit() {
	local rc=$?
	if [[ ${CLEANED:-0} != 1 ]]; then
		if [[ ${rc} != 0 && -f ${RT_LOG} ]]; then
			log "containerd log (last 30 lines):"
			tail -n 30 "${RT_LOG}" >&2 || true
		fi
		verify_clean || true
	fi
}
trap on_exit EXIT

# 0. Pre-clean what a crashed run left, then packages.
verify_clean
timed apt rt_install postgresql-15 # for the postgres image; tests/deps.sh installs it too
for c in containerd ctr runc /usr/lib/cni/bridge /usr/lib/cni/host-local; do
	command -v "${c}" >/dev/null || {
		log "missing ${c} after install"
		exit 1
	}
done
log "containerd $(containerd --version | awk '{print $3}'), $(runc --version | head -n1)," \
	"/sys/fs/cgroup: $(stat -fc %T /sys/fs/cgroup), ${RT_E2E%/*}: $(findmnt -no FSTYPE -T "${RT_E2E%/*}")"
SYSTEM_CONTAINERD_BEFORE=$(rt_containerd_pids | sort)
HOST_PATHS="/run/containerd /var/lib/cni /sys/fs/cgroup/memory/k8s.io"
host_paths() {
	local p
	for p in ${HOST_PATHS}; do [[ ! -e ${p} ]] || echo "${p}"; done
}
HOST_PATHS_BEFORE=$(host_paths)

# 1. Images.
mkdir -p "${IMAGES}" "${WORK}"
timed build "${HERE}/../images/build.sh" "${IMAGES}"

# 2. containerd.
timed start rt_start
timed import rt_import "${IMAGES}/pause.tar" "${IMAGES}/busybox.tar" "${IMAGES}/postgres.tar"
refs=$(rt_ctr images ls -q)
for r in localhost/pause:e2e localhost/busybox:e2e localhost/postgres:e2e; do
	if grep -qxF "${r}" <<<"${refs}"; then pass "image ${r} imported"; else fail "image ${r} missing"; fi
done
rt_ctr images ls | sed 's/^/  /'

# 3. CRI plugin configuration, from its startup log.
if grep -qF "NetworkPluginConfDir:${RT_CNI_CONF_DIR} " "${RT_LOG}" &&
	grep -qF "SandboxImage:localhost/pause:e2e " "${RT_LOG}" &&
	grep -qF "Root:${RT_RUNC_ROOT}" "${RT_LOG}"; then
	pass "cri: conf_dir ${RT_CNI_CONF_DIR}, sandbox_image localhost/pause:e2e, runc root"
else
	fail "cri: config not taken (see ${RT_LOG})"
fi
if grep -qF "failed to load cni" "${RT_LOG}"; then
	fail "cri: CNI config not loaded: $(grep -F 'failed to load cni' "${RT_LOG}" | tail -n1)"
else
	pass "cri: CNI conflist loaded from ${RT_CNI_CONF_DIR}"
fi

# 4. pause: detached, then SIGTERM.
pause_check() {
	local i st
	rt_ctr run -d --runc-root "${RT_RUNC_ROOT}" --fifo-dir "${RT_RUN}/fifo" --null-io \
		localhost/pause:e2e verify-pause >/dev/null
	sleep 0.3
	st=$(rt_ctr task ls | awk '$1 == "verify-pause" {print $3}')
	[[ ${st} == RUNNING ]] || {
		log "pause task is ${st:-absent}"
		return 1
	}
	rt_ctr task kill -s SIGTERM verify-pause
	for ((i = 0; i < 50; i++)); do
		st=$(rt_ctr task ls | awk '$1 == "verify-pause" {print $3}')
		[[ ${st} == STOPPED ]] && break
		sleep 0.1
	done
	rt_ctr task rm verify-pause >/dev/null
	rt_ctr container rm verify-pause
	[[ ${st} == STOPPED ]] || {
		log "pause did not stop on SIGTERM (${st})"
		return 1
	}
}
if timed run_pause pause_check; then pass "pause: runs, exits on SIGTERM"; else fail "pause"; fi

# 5. busybox: a file on a bind-mounted /data.
mkdir -p "${WORK}/vol"
TOKEN=tok-$$-${RANDOM}
capture run_busybox rt_run --mount "type=bind,src=${WORK}/vol,dst=/data,options=rbind:rw" \
	localhost/busybox:e2e verify-busybox sh -c \
	"echo ${TOKEN} >/data/f && sync && cat /data/f && md5sum /data/f && df -k /data | tail -n1 &&
	 stat -f -c 'blocks=%b bsize=%S' /data && ls /data"
if [[ $(head -n1 <<<"${out}") == "${TOKEN}" && $(<"${WORK}/vol/f") == "${TOKEN}" ]] &&
	grep -q "$(md5sum <"${WORK}/vol/f" | cut -d' ' -f1)  /data/f" <<<"${out}" &&
	grep -q '^blocks=[0-9]* bsize=[0-9]*$' <<<"${out}"; then
	pass "busybox: write, sync, read, md5sum, df, stat -f"
else
	fail "busybox"
fi

# 6. busybox: a raw block device.
truncate -s 16M "${WORK}/disk.img"
LOOP=$(losetup -f --show "${WORK}/disk.img")
echo "${LOOP}" >"${LOOP_RECORD}"
capture run_block rt_run --device "${LOOP}" localhost/busybox:e2e verify-block sh -c \
	"dd if=/dev/urandom of=/tmp/a bs=4096 count=256 2>/dev/null &&
	 dd if=/tmp/a of=${LOOP} bs=4096 conv=fsync 2>/dev/null &&
	 dd if=${LOOP} of=/tmp/b bs=4096 count=256 2>/dev/null && cmp /tmp/a /tmp/b &&
	 sha256sum /tmp/a | cut -d' ' -f1 && blockdev --getsize64 ${LOOP}"
want=$(dd if="${LOOP}" bs=4096 count=256 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ $(sed -n 1p <<<"${out}") == "${want}" && $(sed -n 2p <<<"${out}") == 16777216 ]]; then
	pass "block: dd write/read of ${LOOP} inside the container, blockdev --getsize64"
else
	fail "block"
fi
losetup -d "${LOOP}"
rm -f "${LOOP_RECORD}" "${WORK}/disk.img"

# 7. postgres as uid 999 on a bind-mounted /data, and the image's default command.
mkdir -p "${WORK}/pgvol"
chown 999:999 "${WORK}/pgvol"
# shellcheck disable=SC2016
capture run_postgres rt_run --mount "type=bind,src=${WORK}/pgvol,dst=/data,options=rbind:rw" \
	localhost/postgres:e2e verify-postgres sh -c \
	'echo "uid=$(id -u) gid=$(id -g) user=$(id -un)" && e2e-pg selftest /data/pgdata'
if grep -qx 'uid=999 gid=999 user=postgres' <<<"${out}" && grep -q 'selftest OK' <<<"${out}" &&
	[[ $(stat -c %u "${WORK}/pgvol/pgdata/PG_VERSION") == 999 ]]; then
	pass "postgres: initdb, start, create, insert, stop, start, select, stop as uid 999 on /data"
else
	fail "postgres on /data"
fi
# A container killed while its server runs (as when a pod is deleted), then a new one.
pg_kill_check() {
	local i
	rm -f "${WORK}/pgvol/written"
	rt_ctr run -d --runc-root "${RT_RUNC_ROOT}" --fifo-dir "${RT_RUN}/fifo" --null-io \
		--mount "type=bind,src=${WORK}/pgvol,dst=/data,options=rbind:rw" localhost/postgres:e2e \
		verify-postgres-kill sh -c \
		'e2e-pg start /data/pgdata && e2e-pg write killed 50 && touch /data/written && sleep 600' \
		>/dev/null
	for ((i = 0; i < 300; i++)); do
		[[ -e ${WORK}/pgvol/written ]] && break
		sleep 0.1
	done
	rt_ctr task kill -s SIGKILL verify-postgres-kill
	for ((i = 0; i < 50; i++)); do
		[[ $(rt_ctr task ls | awk '$1 == "verify-postgres-kill" {print $3}') == STOPPED ]] && break
		sleep 0.1
	done
	rt_ctr task rm verify-postgres-kill >/dev/null
	rt_ctr container rm verify-postgres-kill
	[[ -e ${WORK}/pgvol/written && -e ${WORK}/pgvol/pgdata/postmaster.pid ]] || {
		log "the killed container did not write its rows, or left no postmaster.pid"
		return 1
	}
	rt_run --mount "type=bind,src=${WORK}/pgvol,dst=/data,options=rbind:rw" \
		localhost/postgres:e2e verify-postgres-after-kill sh -c \
		'e2e-pg start /data/pgdata && e2e-pg check killed 50 && e2e-pg check selftest 100 &&
		 e2e-pg stop /data/pgdata'
}
capture run_postgres_kill pg_kill_check
if grep -q 'check killed: 50 rows OK' <<<"${out}" && grep -q 'check selftest: 100 rows OK' <<<"${out}"; then
	pass "postgres: rows survive SIGKILL of the container; restart with a stale postmaster.pid"
else
	fail "postgres after SIGKILL"
fi
capture run_postgres_default rt_run localhost/postgres:e2e verify-postgres-default
if grep -q 'selftest OK' <<<"${out}"; then
	pass "postgres: default command (selftest in /tmp on overlayfs)"
else
	fail "postgres default command"
fi

# 8. Stop and clean, then look for leftovers.
what_is_left() {
	local left=() m p
	for m in $(rt_mounts_under "${RT_E2E}" "${RT_RUN}"); do left+=("mount ${m}"); done
	for p in $(rt_shim_pids); do left+=("shim pid ${p}"); done
	[[ -z $(rt_our_pid) ]] || left+=("containerd pid $(rt_our_pid)")
	for p in "${RT_E2E}" "${RT_RUN}"; do [[ ! -e ${p} ]] || left+=("path ${p}"); done
	! ip link show dev "${RT_BRIDGE}" >/dev/null 2>&1 || left+=("bridge ${RT_BRIDGE}")
	[[ -z $(losetup -j "${WORK}/disk.img" 2>/dev/null) ]] || left+=("loop device")
	compgen -G "/var/lib/cni/results/${RT_NET_NAME}-*" >/dev/null && left+=("cni cache")
	compgen -G "/sys/fs/cgroup/memory/k8s.io/verify-*" >/dev/null && left+=("cgroups")
	[[ $(host_paths) == "${HOST_PATHS_BEFORE}" ]] ||
		left+=("host paths before: ${HOST_PATHS_BEFORE:-none}, after: $(host_paths | tr '\n' ' ')")
	[[ ${#left[@]} -eq 0 ]] || printf '%s\n' "${left[@]}"
}
if [[ ${FAILED} -gt 0 ]]; then
	log "containerd log (last 30 lines):"
	tail -n 30 "${RT_LOG}" >&2 || true
fi
timed stop rt_stop
timed clean verify_clean && CLEANED=1
leftovers=$(what_is_left)
if [[ -z ${leftovers} ]]; then
	pass "clean: nothing left under ${RT_E2E} ${RT_RUN}, no process, mount, bridge, loop"
else
	fail "clean: left behind: $(tr '\n' ';' <<<"${leftovers}")"
fi
SYSTEM_CONTAINERD_AFTER=$(rt_containerd_pids | sort)
[[ ${SYSTEM_CONTAINERD_AFTER} == "${SYSTEM_CONTAINERD_BEFORE}" ]] ||
	log "NOTE: containerd processes before: ${SYSTEM_CONTAINERD_BEFORE:-none}," \
		"after: ${SYSTEM_CONTAINERD_AFTER:-none}"

log "times: ${TIMES[*]} total=$(($(now_ms) - T_START))ms"
echo "${PASSED} passed, ${FAILED} failed"
[[ ${FAILED} -eq 0 ]]
