#!/usr/bin/env bash
# Stop and start the daemons of a cluster made by ceph-up.sh, for tests of "Ceph is down".
#
#   CEPH_DIR=/the/dir tests/ceph/ceph-ctl.sh stop-mon|start-mon|stop-osd|start-osd|status
#
# stop-*   TERM the daemon recorded in $CEPH_DIR/pids/ (KILL after 10 s, 60 s for the OSD),
#          only if its command line names $CEPH_DIR/ceph.conf. stop-osd first asks the OSD
#          (admin socket) for a full shutdown, so memstore saves its data and start-osd brings
#          the images back.
# start-mon  starts mon.a and waits until it answers `ceph mon stat`.
# start-osd  starts osd.0 and waits until the mon reports this new OSD instance up; if the mon
#          is down, it only starts it (the OSD boots once the mon is back).
# Stopping a stopped daemon or starting a running one is not an error.
set -euo pipefail
unset CEPH_ARGS

STOP_TIMEOUT=10

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T_START=$(now_us)
fmt_us() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
log() { echo "ceph-ctl: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
usage() {
	echo "usage: CEPH_DIR=/dir $0 stop-mon|start-mon|stop-osd|start-osd|status" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
[[ -n ${CEPH_DIR:-} ]] || usage
[[ -d ${CEPH_DIR} ]] || die "no such directory: ${CEPH_DIR}"
D=$(realpath -e "${CEPH_DIR}")
CONF=${D}/ceph.conf
C=(-c "${CONF}")
[[ -f ${CONF} && -d ${D}/pids ]] || die "${D} is not a cluster made by ceph-up.sh"

proc_state() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
	stat=${stat##*) }
	echo "${stat:0:1}"
}
proc_gone() {
	local s
	s=$(proc_state "$1")
	[[ -z ${s} || ${s} == Z ]]
}

# Prints the PID of daemon NAME (mon.a, osd.0) if it runs with our conf.
daemon_pid() {
	local f=${D}/pids/$1.pid pid
	[[ -r ${f} ]] || return 0
	pid=$(<"${f}")
	[[ ${pid} =~ ^[0-9]+$ ]] || return 0
	proc_gone "${pid}" && return 0
	tr '\0' '\n' <"/proc/${pid}/cmdline" 2>/dev/null | grep -Fxq -- "${CONF}" || return 0
	echo "${pid}"
}

wait_gone() {
	local pid=$1 secs=$2
	local deadline=$(($(now_us) + secs * 1000000))
	while ! proc_gone "${pid}"; do
		(($(now_us) < deadline)) || return 1
		sleep 0.05
	done
}

# stop_daemon NAME [SECS]: TERM, then KILL after SECS (default $STOP_TIMEOUT).
stop_daemon() {
	local name=$1 secs=${2:-${STOP_TIMEOUT}} pid
	pid=$(daemon_pid "${name}")
	if [[ -z ${pid} ]]; then
		log "${name} is not running"
		return 0
	fi
	kill -TERM "${pid}" 2>/dev/null || true
	if ! wait_gone "${pid}" "${secs}"; then
		log "${name} (pid ${pid}) still running ${secs} s after TERM: KILL"
		kill -KILL "${pid}" 2>/dev/null || true
		wait_gone "${pid}" 5 || die "${name} (pid ${pid}) survived KILL"
	fi
	log "stopped ${name} (pid ${pid}) in $(fmt_us $(($(now_us) - T_START))) s"
}

# Starts a daemon in the foreground of its own session, so $! is its PID; no stdio of ours.
start_daemon() {
	local name=$1
	shift
	(
		# No descriptor of ours or of our caller (pipes of a CI runner, make's jobserver,
		# our lock) may stay open in a daemon.
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			((fd > 2)) && exec {fd}>&-
		done
		exec setsid "$@" -f </dev/null >>"${D}/log/${name}.stdout" 2>&1
	) &
	local pid=$!
	echo "${pid}" >"${D}/pids/${name}.pid"
	# Until the exec, the child's command line is ours: wait for it to name the conf.
	for _ in $(seq 100); do
		[[ -n $(daemon_pid "${name}") ]] && return 0
		proc_gone "${pid}" && return 0
		sleep 0.01
	done
}

# wait_for SECS WHAT NAME CMD...: polls CMD until it succeeds; fails if daemon NAME exits.
wait_for() {
	local secs=$1 what=$2 name=$3
	shift 3
	local deadline=$(($(now_us) + secs * 1000000))
	until "$@" >/dev/null 2>&1; do
		[[ -n $(daemon_pid "${name}") ]] ||
			die "${name} exited (see ${D}/log/${name}.stdout and ${D}/log/ceph-${name}.log)"
		(($(now_us) < deadline)) || die "timed out after ${secs} s waiting for ${what}"
		sleep 0.2
	done
}

mon_answers() { timeout 10 ceph "${C[@]}" --connect-timeout 5 mon stat; }

# True once the mon's osdmap has osd.0 up at the address of process $1: the messenger nonce of
# a daemon is its PID, so a stale "up" left from the previous instance does not count.
osd_instance_up() {
	local pid=$1 dump
	dump=$(timeout 10 ceph "${C[@]}" --connect-timeout 5 osd dump -f json) || return 1
	/usr/bin/python3 -c '
import json, sys
pid = int(sys.argv[1])
for o in json.loads(sys.stdin.read())["osds"]:
    if o["osd"] == 0 and o["up"] == 1:
        nonces = {a.get("nonce") for a in o["public_addrs"]["addrvec"]}
        sys.exit(0 if pid in nonces else 1)
sys.exit(1)' "${pid}" <<<"${dump}"
}

case $1 in
stop-mon)
	stop_daemon mon.a
	;;
stop-osd)
	pid=$(daemon_pid osd.0)
	if [[ -n ${pid} ]]; then
		asok=(timeout 10 ceph --admin-daemon "${D}/run/ceph-osd.0.asok")
		# A fast shutdown (the default) skips the store's umount: memstore would lose the data.
		"${asok[@]}" config set osd_fast_shutdown false >/dev/null 2>&1 ||
			log "WARNING: could not disable osd_fast_shutdown; memstore data will be lost"
		# A full shutdown waits (5 s) for the mon to ack "mark me down": not if it is down.
		if [[ -z $(daemon_pid mon.a) ]]; then
			"${asok[@]}" config set osd_mon_shutdown_timeout 0.1 >/dev/null 2>&1 || true
		fi
	fi
	# A full shutdown saves all of memstore's data to disk: give it time.
	stop_daemon osd.0 60
	;;
start-mon)
	if [[ -n $(daemon_pid mon.a) ]]; then
		log "mon.a is already running"
	else
		start_daemon mon.a ceph-mon "${C[@]}" -i a
	fi
	wait_for 60 "the mon to answer" mon.a mon_answers
	log "mon.a up (pid $(daemon_pid mon.a)) in $(fmt_us $(($(now_us) - T_START))) s"
	;;
start-osd)
	if [[ -n $(daemon_pid osd.0) ]]; then
		log "osd.0 is already running"
	else
		start_daemon osd.0 ceph-osd "${C[@]}" -i 0
	fi
	pid=$(<"${D}/pids/osd.0.pid")
	if [[ -z $(daemon_pid mon.a) ]]; then
		log "mon.a is down: osd.0 (pid ${pid}) started, it boots once the mon is up"
		exit 0
	fi
	wait_for 60 "osd.0 to be up" osd.0 osd_instance_up "${pid}"
	log "osd.0 up (pid ${pid}) in $(fmt_us $(($(now_us) - T_START))) s"
	;;
status)
	for n in mon.a osd.0; do
		p=$(daemon_pid "${n}")
		if [[ -n ${p} ]]; then
			echo "${n}: running (pid ${p})"
		else
			echo "${n}: stopped"
		fi
	done
	;;
*)
	usage
	;;
esac
