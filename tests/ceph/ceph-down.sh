#!/usr/bin/env bash
# Tear down a cluster made by ceph-up.sh, and whatever tests left attached to it.
#
#   CEPH_DIR=/the/dir tests/ceph/ceph-down.sh      or      tests/ceph/ceph-down.sh /the/dir
#   KEEP_DIR=1 keeps the directory (logs); UMOUNT_TIMEOUT (default 15) bounds each umount.
#
# Order (notes/ceph-test-cluster.md section 5):
#   1. unmount everything below CEPH_DIR, and every mount whose source is one of this cluster's
#      loop devices (backing file below CEPH_DIR or below one of its rbd-fuse mounts);
#   2. detach those loop devices;
#   3. unmount this cluster's rbd-fuse mounts, then end its rbd-fuse processes;
#   4. stop osd, then mgr, then mon: by recorded PID (and by a /proc scan), only processes whose
#      command line names $CEPH_DIR/ceph.conf; TERM, then KILL after 10 s;
#   5. rm -rf CEPH_DIR (only a directory ceph-up.sh marked as its own).
# "This cluster's" rbd-fuse: its command line or environment names CEPH_DIR, or a mon port of
# this cluster, or a conf file whose mon_host names one. Each umount runs under a watchdog: if it
# hangs (the cluster is gone under a mounted volume), those rbd-fuse processes get SIGKILL,
# which aborts the FUSE connection and lets the umount finish.
# Idempotent: a second run, a half-built directory or a missing one are fine. Exit status is
# non-zero only if something could not be cleaned up.
set -uo pipefail
unset CEPH_ARGS

UMOUNT_TIMEOUT=${UMOUNT_TIMEOUT:-15}
STOP_TIMEOUT=10

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T_START=$(now_us)
fmt_us() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
log() { echo "ceph-down: $*" >&2; }
FAILED=0
fail() {
	log "ERROR: $*"
	FAILED=1
}

CEPH_DIR=${1:-${CEPH_DIR:-}}
if [[ -z ${CEPH_DIR} ]]; then
	echo "usage: CEPH_DIR=/dir $0   or   $0 /dir" >&2
	exit 2
fi
[[ ${CEPH_DIR} == /* ]] || {
	log "CEPH_DIR must be an absolute path: ${CEPH_DIR}"
	exit 2
}
if [[ -d ${CEPH_DIR} ]]; then
	CEPH_DIR=$(realpath -e "${CEPH_DIR}")
else
	CEPH_DIR=$(realpath -m "${CEPH_DIR}")
fi
if [[ ${CEPH_DIR} == / ]]; then
	log "refusing CEPH_DIR=/"
	exit 2
fi
D=${CEPH_DIR}
CONF=${D}/ceph.conf

# Ports of this cluster's mons, from mon_host in its conf.
ports_of_conf() {
	[[ -f $1 && -r $1 ]] || return 0
	sed -n 's/^[[:space:]]*mon[_ ]host[[:space:]]*=//p' "$1" | grep -oE ':[0-9]+' | tr -d : |
		sort -u
}
mapfile -t MON_PORTS < <(ports_of_conf "${CONF}")
PORT_RE=""
if [[ ${#MON_PORTS[@]} -gt 0 ]]; then
	PORT_RE="(^|[^0-9])(127\\.0\\.0\\.1|localhost|\\[::1\\]|::1):($(
		IFS='|'
		echo "${MON_PORTS[*]}"
	))([^0-9]|$)"
fi

# ---------------------------------------------------------------------------------------------
# Processes

# Prints the state letter of PID (R, S, D, Z, ...), or nothing if it is gone.
proc_state() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
	stat=${stat##*) }
	echo "${stat:0:1}"
}
# A zombie has exited: only its parent (often PID 1, later) still has to reap it.
proc_gone() {
	local s
	s=$(proc_state "$1")
	[[ -z ${s} || ${s} == Z ]]
}
# Prints the basename of PID's argv[0] (no fork: this runs for every process).
proc_exe() {
	local argv0=""
	read -r -d '' argv0 2>/dev/null <"/proc/$1/cmdline"
	echo "${argv0##*/}"
}
# Prints the NUL-separated file /proc/PID/$2 one element per line.
proc_lines() { tr '\0' '\n' <"/proc/$1/$2" 2>/dev/null; }

# True if PID's command line has the element $CONF (ceph -c $CONF ...).
names_conf() { proc_lines "$1" cmdline | grep -Fxq -- "${CONF}"; }

# Prints the conf files an rbd-fuse process reads: -c/--conf arguments and CEPH_CONF.
confs_of() {
	local pid=$1 prev="" a
	while IFS= read -r a; do
		case ${prev} in -c | --conf) echo "${a}" ;; esac
		case ${a} in --conf=* | -c=*) echo "${a#*=}" ;; esac
		prev=${a}
	done < <(proc_lines "${pid}" cmdline)
	proc_lines "${pid}" environ | sed -n 's/^CEPH_CONF=//p'
}

# True if the rbd-fuse process PID belongs to this cluster.
fuse_is_ours() {
	local pid=$1 f text
	text=$(
		proc_lines "${pid}" cmdline
		proc_lines "${pid}" environ | grep -E '^CEPH_(ARGS|CONF)='
	)
	[[ -n ${text} ]] || return 1
	grep -Fq -- "${D}/" <<<"${text}" && return 0
	[[ -n ${PORT_RE} ]] || return 1
	grep -Eq -- "${PORT_RE}" <<<"${text}" && return 0
	while IFS= read -r f; do
		[[ ${f} == /* ]] || f=$(readlink "/proc/${pid}/cwd")/${f}
		[[ -f ${f} ]] || continue
		sed -n 's/^[[:space:]]*mon[_ ]host[[:space:]]*=//p' "${f}" | grep -Eq -- "${PORT_RE}" &&
			return 0
	done < <(confs_of "${pid}")
	return 1
}

# Prints the PIDs of this cluster's rbd-fuse processes.
our_fuse_pids() {
	local p pid
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[[ $(proc_exe "${pid}") == rbd-fuse ]] || continue
		proc_gone "${pid}" && continue
		fuse_is_ours "${pid}" && echo "${pid}"
	done
}

# Sends SIGNAL to PIDS, then waits up to SECS for them to be gone. Returns 1 if some are not.
signal_and_wait() {
	local sig=$1 secs=$2 pid left
	shift 2
	for pid in "$@"; do kill "-${sig}" "${pid}" 2>/dev/null; done
	local deadline=$(($(now_us) + secs * 1000000))
	while :; do
		left=0
		for pid in "$@"; do proc_gone "${pid}" || left=1; done
		[[ ${left} -eq 0 ]] && return 0
		(($(now_us) < deadline)) || return 1
		sleep 0.05
	done
}

# TERM, then KILL after $STOP_TIMEOUT seconds.
stop_pids() {
	local what=$1
	shift
	[[ $# -gt 0 ]] || return 0
	signal_and_wait TERM "${STOP_TIMEOUT}" "$@" && return 0
	log "${what} (pid $*) still running ${STOP_TIMEOUT} s after TERM: KILL"
	signal_and_wait KILL 5 "$@" || fail "${what} (pid $*) survived KILL"
}

# ---------------------------------------------------------------------------------------------
# Mounts

# Prints "target<TAB>source<TAB>fstype" of every mount, in /proc/self/mountinfo order (parents
# before children), with the octal escapes (\040 for a space) decoded.
mounts() {
	local line target fstype source rest
	while IFS= read -r line; do
		read -r _ _ _ _ target _ <<<"${line}"
		rest=${line#* - }
		read -r fstype source _ <<<"${rest}"
		printf '%b\t%b\t%s\n' "${target}" "${source}" "${fstype}"
	done </proc/self/mountinfo
}

is_below() { [[ $1 == "$2" || $1 == "$2"/* ]]; }

# True if something is mounted at or below $1.
mounted_below() {
	local target
	while IFS=$'\t' read -r target _; do
		is_below "${target}" "$1" && return 0
	done < <(mounts)
	return 1
}

# umount under a watchdog. If it has not returned after $UMOUNT_TIMEOUT s, SIGKILL this
# cluster's rbd-fuse processes (only they can unblock it) and wait again; last resort umount -l.
umount_watched() {
	local mp=$1 upid rc deadline
	umount -- "${mp}" 2>/dev/null &
	upid=$!
	deadline=$(($(now_us) + UMOUNT_TIMEOUT * 1000000))
	while ! proc_gone "${upid}"; do
		if (($(now_us) >= deadline)); then
			local pids
			mapfile -t pids < <(our_fuse_pids)
			log "umount ${mp} hangs after ${UMOUNT_TIMEOUT} s; SIGKILL rbd-fuse ${pids[*]:-(none)}"
			[[ ${#pids[@]} -gt 0 ]] && signal_and_wait KILL 5 "${pids[@]}"
			local t2=$(($(now_us) + 10 * 1000000))
			while ! proc_gone "${upid}" && (($(now_us) < t2)); do sleep 0.1; done
			if ! proc_gone "${upid}"; then
				fail "umount ${mp} still hangs; leaving it (pid ${upid})"
				return 1
			fi
			break
		fi
		sleep 0.02
	done
	wait "${upid}"
	rc=$?
	[[ ${rc} -eq 0 ]] && return 0
	# Still mounted? (It may have gone with a parent, or the umount failed.)
	if mounts | cut -f1 | grep -Fxq -- "${mp}"; then
		umount -l -- "${mp}" 2>/dev/null && {
			log "umount ${mp} failed; lazily detached it"
			return 0
		}
		fail "could not unmount ${mp}"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------------------------
# What belongs to this cluster

mapfile -t FUSE_PIDS < <(our_fuse_pids)

# The rbd-fuse mount points of this cluster: FUSE mounts below CEPH_DIR or whose source names
# it or its ports, and the mount points named in its rbd-fuse processes' argv.
declare -A FUSE_MPS=()
declare -A ALL_MPS=()
while IFS=$'\t' read -r target source fstype; do
	ALL_MPS[${target}]=${fstype}
	[[ ${fstype} == fuse || ${fstype} == fuse.* ]] || continue
	if is_below "${target}" "${D}" || [[ ${source} == *"${D}/"* ]] ||
		{ [[ -n ${PORT_RE} ]] && grep -Eq -- "${PORT_RE}" <<<"${source}"; }; then
		FUSE_MPS[${target}]=1
	fi
done < <(mounts)
for pid in "${FUSE_PIDS[@]}"; do
	cwd=$(readlink "/proc/${pid}/cwd" 2>/dev/null) || cwd=/
	while IFS= read -r a; do
		[[ ${a} == /* ]] || a=${cwd%/}/${a}
		a=${a%/}
		[[ ${ALL_MPS[${a}]:-} == fuse || ${ALL_MPS[${a}]:-} == fuse.* ]] && FUSE_MPS[${a}]=1
	done < <(proc_lines "${pid}" cmdline | tail -n +2)
done

# Loop devices whose backing file is below CEPH_DIR or below one of those FUSE mounts.
LOOPS=()
for f in /sys/block/loop*/loop/backing_file; do
	[[ -r ${f} ]] || continue
	back=$(<"${f}")
	back=${back% (deleted)}
	ours=0
	is_below "${back}" "${D}" && ours=1
	for mp in "${!FUSE_MPS[@]}"; do is_below "${back}" "${mp}" && ours=1; done
	[[ ${ours} -eq 1 ]] && LOOPS+=("/dev/$(basename "$(dirname "$(dirname "${f}")")")")
done

# ---------------------------------------------------------------------------------------------
# 1. Unmount file systems below CEPH_DIR or on our loop devices (children first).

prev=""
for round in 1 2 3 4 5 6 7 8; do
	todo=()
	while IFS=$'\t' read -r target source fstype; do
		[[ ${fstype} == fuse || ${fstype} == fuse.* ]] && [[ -n ${FUSE_MPS[${target}]:-} ]] &&
			continue
		ours=0
		is_below "${target}" "${D}" && ours=1
		for l in "${LOOPS[@]}"; do [[ ${source} == "${l}" ]] && ours=1; done
		for mp in "${!FUSE_MPS[@]}"; do
			[[ ${target} != "${mp}" ]] && is_below "${target}" "${mp}" && ours=1
		done
		[[ ${ours} -eq 1 ]] && todo=("${target}" "${todo[@]}")
	done < <(mounts)
	[[ ${#todo[@]} -eq 0 ]] && break
	if [[ ${prev} == "${todo[*]}" ]]; then
		fail "could not unmount: ${todo[*]}"
		break
	fi
	prev=${todo[*]}
	for mp in "${todo[@]}"; do
		log "umount ${mp}"
		umount_watched "${mp}"
	done
	if [[ ${round} -eq 8 ]]; then
		fail "mounts remain below ${D} after ${round} rounds"
	fi
done

# ---------------------------------------------------------------------------------------------
# 2. Detach the loop devices.

for l in "${LOOPS[@]}"; do
	log "losetup -d ${l}"
	losetup -d "${l}" 2>/dev/null || {
		[[ -e /sys/block/${l#/dev/}/loop/backing_file ]] && fail "losetup -d ${l} failed"
	}
done

# ---------------------------------------------------------------------------------------------
# 3. Unmount the rbd-fuse mounts, then end this cluster's rbd-fuse processes.

mapfile -t FUSE_LIST < <(printf '%s\n' "${!FUSE_MPS[@]}" | sort -r)
for mp in "${FUSE_LIST[@]}"; do
	[[ -n ${mp} ]] || continue
	if mounts | cut -f1 | grep -Fxq -- "${mp}"; then
		log "umount (rbd-fuse) ${mp}"
		umount_watched "${mp}"
	fi
done
# After its umount, an rbd-fuse process exits by itself within milliseconds; the others get
# TERM (on which rbd-fuse unmounts and exits), then KILL.
mapfile -t FUSE_PIDS < <(our_fuse_pids)
if [[ ${#FUSE_PIDS[@]} -gt 0 ]]; then
	sleep 0.2
	mapfile -t FUSE_PIDS < <(our_fuse_pids)
	if [[ ${#FUSE_PIDS[@]} -gt 0 ]]; then
		log "ending rbd-fuse ${FUSE_PIDS[*]}"
		stop_pids rbd-fuse "${FUSE_PIDS[@]}"
	fi
fi
# An rbd-fuse killed while mounted leaves a dead mount ("Transport endpoint is not connected").
for mp in "${FUSE_LIST[@]}"; do
	[[ -n ${mp} ]] || continue
	if mounts | cut -f1 | grep -Fxq -- "${mp}"; then
		log "umount (dead rbd-fuse) ${mp}"
		umount_watched "${mp}"
	fi
done

# ---------------------------------------------------------------------------------------------
# 4. Stop the daemons: osd, mgr, mon.

# Prints the PIDs of daemon $1 (ceph-osd, ...): the recorded one and any found by a /proc scan,
# all only if their command line names our conf.
daemon_pids() {
	local exe=$1 name=$2 p pid
	{
		if [[ -r ${D}/pids/${name}.pid ]]; then
			pid=$(<"${D}/pids/${name}.pid")
			[[ ${pid} =~ ^[0-9]+$ ]] && echo "${pid}"
		fi
		for p in /proc/[0-9]*; do
			[[ $(proc_exe "${p#/proc/}") == "${exe}" ]] && echo "${p#/proc/}"
		done
	} | sort -u | while read -r pid; do
		proc_gone "${pid}" && continue
		names_conf "${pid}" && echo "${pid}"
	done
}

for d in "ceph-osd osd.0" "ceph-mgr mgr.x" "ceph-mon mon.a"; do
	read -r exe name <<<"${d}"
	mapfile -t pids < <(daemon_pids "${exe}" "${name}")
	[[ ${#pids[@]} -gt 0 ]] || continue
	log "stopping ${name} (pid ${pids[*]})"
	stop_pids "${name}" "${pids[@]}"
done

# ---------------------------------------------------------------------------------------------
# 5. Remove the directory.

if [[ ${KEEP_DIR:-0} == 1 ]]; then
	[[ -d ${D} ]] && log "KEEP_DIR=1: keeping ${D}"
elif [[ -e ${D} ]]; then
	if [[ ! -f ${D}/.rbdcsi-ceph ]]; then
		fail "not removing ${D}: it has no .rbdcsi-ceph marker (not made by ceph-up.sh)"
	elif mounted_below "${D}"; then
		fail "not removing ${D}: something is still mounted below it"
	else
		rm -rf --one-file-system -- "${D}" || fail "rm -rf ${D} failed"
	fi
fi

log "$(printf 'done in %s s%s' "$(fmt_us $(($(now_us) - T_START)))" \
	"$([[ ${FAILED} -eq 1 ]] && echo ' (with errors)')")"
exit "${FAILED}"
