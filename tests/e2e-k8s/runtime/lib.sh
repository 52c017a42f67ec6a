# shellcheck shell=bash
# Our own containerd for the Kubernetes e2e test: install, configure, start, import images, stop,
# clean up. Source it from bash (set -euo pipefail is fine) and call:
#
#   rt_setup E2E_DIR [RUN_DIR]   set the RT_* variables below (call first; RUN_DIR defaults to
#                                /run/<basename of E2E_DIR>); creates nothing
#   rt_install [PKG...]          apt-get install containerd runc containernetworking-plugins
#                                catatonit busybox-static and each PKG that is missing (apt-get
#                                update only then); reports a containerd the install started
#   rt_start                     write the config + CNI conflist, start containerd in the
#                                background (pidfile), wait until it answers (30 s)
#   rt_import TAR...             ctr images import each docker archive into namespace k8s.io
#   rt_ctr ARGS...               ctr -a RT_SOCK -n k8s.io ARGS...
#   rt_run [OPTS] IMAGE ID CMD   ctr run --rm with our runc root and fifo dir; OPTS are more
#                                ctr run options (--mount, --device, --user, --env ...)
#   rt_stop                      SIGTERM our containerd (SIGKILL after 20 s); containers keep
#                                running, as with any containerd restart
#   rt_clean                     remove everything rt_start and its containers made: runc
#                                containers in RT_RUNC_ROOT, our containerd and its shims, mounts
#                                under our dirs, the CNI bridge, libcni's cache files of our
#                                network and sandboxes, the files/dirs listed below, and the
#                                empty /run/containerd, /var/lib/cni, /sys/fs/cgroup/*/k8s.io if
#                                they did not exist before rt_start. Idempotent, safe after a
#                                crash; RT_KEEP_LOGS=1 keeps RT_LOG.
#
# Only what is named by our pidfile, our socket, our runc root and our directories is touched.
# Variables after rt_setup:
#   RT_E2E RT_RUN        the two base directories (shared with the caller; removed only if empty)
#   RT_ROOT              RT_E2E/containerd          containerd root (content, snapshots)
#   RT_STATE             RT_RUN/containerd          containerd state (bundles, mounts)
#   RT_SOCK              RT_RUN/containerd.sock     CRI endpoint: unix://$RT_SOCK
#   RT_PIDFILE           RT_RUN/containerd.pid
#   RT_CONFIG            RT_E2E/containerd.toml
#   RT_CNI_CONF_DIR      RT_E2E/cni/net.d
#   RT_RUNC_ROOT         RT_RUN/runc
#   RT_LOG               RT_E2E/logs/containerd.log
#   RT_BRIDGE            CNI bridge, default rbdcsie2e0     (both may be set before rt_setup;
#   RT_NET_NAME          CNI network, default rbdcsi-e2e     rt_clean deletes them by name)

RT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RT_PACKAGES=(containerd runc containernetworking-plugins catatonit busybox-static)

rt_log() { echo "runtime: $*" >&2; }

rt_setup() {
	local e2e=${1:?usage: rt_setup E2E_DIR [RUN_DIR]}
	RT_E2E=${e2e%/}
	RT_RUN=${2:-/run/$(basename "${RT_E2E}")}
	RT_RUN=${RT_RUN%/}
	[[ ${RT_E2E} == /?*/?* && ${RT_RUN} == /?*/?* ]] || {
		rt_log "refusing directories ${RT_E2E} ${RT_RUN}: need absolute paths two levels deep"
		return 1
	}
	RT_ROOT=${RT_E2E}/containerd
	RT_STATE=${RT_RUN}/containerd
	RT_SOCK=${RT_RUN}/containerd.sock
	RT_PIDFILE=${RT_RUN}/containerd.pid
	RT_CONFIG=${RT_E2E}/containerd.toml
	RT_CNI_CONF_DIR=${RT_E2E}/cni/net.d
	RT_RUNC_ROOT=${RT_RUN}/runc
	RT_LOG=${RT_E2E}/logs/containerd.log
	RT_BRIDGE=${RT_BRIDGE:-rbdcsie2e0}
	RT_NET_NAME=${RT_NET_NAME:-rbdcsi-e2e}
	export RT_BRIDGE RT_NET_NAME
}

# rt_containerd_pids: pids of containerd processes (any), one a line.
rt_containerd_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "${p}/exe" 2>/dev/null) == */containerd ]] && echo "${p#/proc/}"
	done
	return 0
}

rt_install() {
	local missing=() p before after
	for p in "${RT_PACKAGES[@]}" "$@"; do
		[[ $(dpkg-query -W -f '${db:Status-Status}' "${p}" 2>/dev/null) == installed ]] ||
			missing+=("${p}")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	rt_log "installing ${missing[*]}"
	before=$(rt_containerd_pids)
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 -qq update >/dev/null
	apt-get -o DPkg::Lock::Timeout=300 -y -qq install --no-install-recommends "${missing[@]}" \
		>/dev/null
	after=$(rt_containerd_pids)
	for p in ${after}; do
		grep -qx "${p}" <<<"${before}" && continue
		rt_log "NOTE: the install started containerd pid ${p}:" \
			"$(tr '\0' ' ' <"/proc/${p}/cmdline" 2>/dev/null); left running (not ours)"
	done
	return 0
}

# rt_our_pid: the pid in RT_PIDFILE if that process is our containerd (its command line names
# RT_CONFIG); prints nothing otherwise.
rt_our_pid() {
	local pid
	[[ -f ${RT_PIDFILE} ]] || return 0
	pid=$(<"${RT_PIDFILE}")
	[[ ${pid} =~ ^[0-9]+$ ]] || return 0
	tr '\0' '\n' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qxF -- "${RT_CONFIG}" && echo "${pid}"
	return 0
}

rt_ctr() {
	ctr -a "${RT_SOCK}" -n k8s.io "$@"
}

rt_start() {
	local pid i
	if [[ -n $(rt_our_pid) ]]; then
		rt_log "containerd already running (pid $(rt_our_pid))"
		return 0
	fi
	mkdir -p "${RT_ROOT}" "${RT_STATE}" "${RT_RUNC_ROOT}" "${RT_CNI_CONF_DIR}" \
		"$(dirname "${RT_LOG}")" "${RT_RUN}/fifo"
	# Remember whether the paths that containerd and libcni use outside our dirs existed.
	if [[ ! -f ${RT_RUN}/preexisting ]]; then
		for i in /run/containerd /run/containerd/s /var/lib/cni /var/lib/cni/results \
			/sys/fs/cgroup/*/k8s.io; do
			[[ -e ${i} ]] && echo "${i}"
		done >"${RT_RUN}/preexisting"
	fi
	"${RT_LIB_DIR}/containerd-config.sh" "${RT_E2E}" "${RT_RUN}" >"${RT_CONFIG}"
	"${RT_LIB_DIR}/cni-conflist.sh" "${RT_E2E}" "${RT_RUN}" \
		>"${RT_CNI_CONF_DIR}/10-${RT_NET_NAME}.conflist"
	rm -f "${RT_SOCK}"
	setsid containerd --config "${RT_CONFIG}" </dev/null >>"${RT_LOG}" 2>&1 &
	pid=$!
	echo "${pid}" >"${RT_PIDFILE}"
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "${pid}" 2>/dev/null; then
			rt_log "containerd exited at start; last lines of ${RT_LOG}:"
			tail -n 20 "${RT_LOG}" >&2
			return 1
		fi
		if [[ -S ${RT_SOCK} ]] && ctr -a "${RT_SOCK}" --timeout 2s version >/dev/null 2>&1; then
			rt_log "containerd pid ${pid} ready on ${RT_SOCK}"
			return 0
		fi
		sleep 0.1
	done
	rt_log "containerd did not answer on ${RT_SOCK} in 30 s"
	return 1
}

rt_import() {
	local t
	for t in "$@"; do
		rt_ctr images import "${t}" >/dev/null || {
			rt_log "import of ${t} failed"
			return 1
		}
	done
}

rt_run() {
	rt_ctr run --rm --runc-root "${RT_RUNC_ROOT}" --fifo-dir "${RT_RUN}/fifo" "$@"
}

# rt_wait_gone PID SECONDS: true once PID is gone (or a zombie).
rt_wait_gone() {
	local i s
	for ((i = 0; i < $2 * 10; i++)); do
		s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
		[[ -z ${s} || ${s} == Z ]] && return 0
		sleep 0.1
	done
	return 1
}

rt_stop() {
	local pid
	pid=$(rt_our_pid)
	if [[ -n ${pid} ]]; then
		kill -TERM "${pid}" 2>/dev/null || true
		if ! rt_wait_gone "${pid}" 20; then
			rt_log "containerd ${pid} ignored SIGTERM for 20 s; SIGKILL"
			kill -KILL "${pid}" 2>/dev/null || true
			rt_wait_gone "${pid}" 5 || true
		fi
		wait "${pid}" 2>/dev/null || true
	fi
	rm -f "${RT_PIDFILE}" "${RT_SOCK}" "${RT_SOCK}.ttrpc"
}

# rt_shim_pids: containerd-shim processes started by our containerd (their -address is RT_SOCK).
rt_shim_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "${p}/exe" 2>/dev/null) == */containerd-shim* ]] || continue
		tr '\0' '\n' <"${p}/cmdline" 2>/dev/null | grep -qxF -- "${RT_SOCK}" && echo "${p#/proc/}"
	done
	return 0
}

# rt_mounts_under DIR...: mount points at or below each DIR, deepest first.
rt_mounts_under() {
	local d
	for d in "$@"; do
		awk -v d="${d}" '{ m = $5; gsub(/\\040/, " ", m); if (m == d || index(m, d "/") == 1) print m }' \
			/proc/self/mountinfo
	done | sort -ru
}

rt_clean() {
	local ns id pid m rc=0 i
	[[ -n ${RT_E2E:-} ]] || {
		rt_log "rt_clean: call rt_setup first"
		return 1
	}
	# 1. Containers of our shims, straight through runc (works with containerd gone).
	if [[ -d ${RT_RUNC_ROOT} ]]; then
		for ns in "${RT_RUNC_ROOT}"/*/; do
			[[ -d ${ns} ]] || continue
			for id in $(runc --root "${ns%/}" list -q 2>/dev/null); do
				runc --root "${ns%/}" delete --force "${id}" >/dev/null 2>&1 ||
					rt_log "runc delete --force ${id} failed"
			done
		done
	fi
	# 2. Our containerd, then its shims (they exit by themselves once their task is gone).
	rt_stop
	for pid in $(rt_shim_pids); do
		kill -TERM "${pid}" 2>/dev/null || true
	done
	for pid in $(rt_shim_pids); do
		rt_wait_gone "${pid}" 5 || kill -KILL "${pid}" 2>/dev/null || true
	done
	# 3. Mounts under containerd's directories: rootfs overlays, sandbox shm, netns, temp
	# mounts (not the rest of RT_E2E and RT_RUN: they are the caller's).
	for ((i = 0; i < 3; i++)); do
		for m in $(rt_mounts_under "${RT_ROOT}" "${RT_STATE}" "${RT_RUNC_ROOT}"); do
			umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true
		done
	done
	for m in $(rt_mounts_under "${RT_ROOT}" "${RT_STATE}" "${RT_RUNC_ROOT}"); do
		rt_log "still mounted: ${m}"
		rc=1
	done
	# 4. Network: our bridge; libcni's cache of our network and of the loopback network of
	# our sandboxes (CNI DEL removes them; a crash does not).
	if ip link show dev "${RT_BRIDGE}" >/dev/null 2>&1; then
		ip link delete dev "${RT_BRIDGE}" || rc=1
	fi
	rm -f /var/lib/cni/results/"${RT_NET_NAME}"-*
	for m in "${RT_ROOT}" "${RT_STATE}"; do
		for id in "${m}"/io.containerd.grpc.v1.cri/sandboxes/*/; do
			[[ -d ${id} ]] || continue
			id=$(basename "${id}")
			rm -f /var/lib/cni/results/*-"${id}"-*
		done
	done
	# 5. Files and directories.
	[[ ${RT_KEEP_LOGS:-0} == 1 ]] || rm -f "${RT_LOG}"
	rm -rf "${RT_ROOT}" "${RT_E2E}/containerd-opt" "${RT_CONFIG}" "${RT_E2E}/cni" \
		"${RT_STATE}" "${RT_RUNC_ROOT}" "${RT_RUN}/cni" "${RT_RUN}/fifo" || rc=1
	if [[ -f ${RT_RUN}/preexisting ]]; then
		# The cgroup parent /k8s.io of containers without a cgroup parent (ctr run, CRI
		# sandboxes without one) is left by runc; rmdir fails while it is in use.
		for m in /var/lib/cni/results /var/lib/cni /run/containerd/s /run/containerd \
			/sys/fs/cgroup/*/k8s.io; do
			[[ -d ${m} ]] || continue
			grep -qxF "${m}" "${RT_RUN}/preexisting" || rmdir "${m}" 2>/dev/null || true
		done
		rm -f "${RT_RUN}/preexisting"
	fi
	rmdir "$(dirname "${RT_LOG}")" "${RT_RUN}" "${RT_E2E}" 2>/dev/null || true
	return "${rc}"
}
