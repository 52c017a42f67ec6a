#!/usr/bin/env bash
# Bring up a throwaway single-node Ceph for tests: 1 mon + 1 memstore OSD, no mgr, cephx on,
# listening on 127.0.0.1 only, all state in one directory. See
# /work/shared/notes/ceph-test-cluster.md section 2 for what each setting is for.
#
#   CEPH_DIR=/new/dir [MON_V2_PORT=n] [MON_V1_PORT=n] tests/ceph/ceph-up.sh
#
# CEPH_DIR must not exist yet, or be empty; it defaults to a new /tmp/rbdcsi-ceph.XXXXXX.
# Mon ports that are not given are picked free automatically, so clusters can run side by side.
# CEPH_BIND_ADDR (default 127.0.0.1) is the one address the mon and OSD bind and advertise: the
# Kubernetes e2e (--deployed) gives its host-only bridge's gateway, so pods reach the cluster.
# Creates the pools rbd and rbd2 and the user client.csi (profile rbd on both pools).
#
# Output: progress on stderr; on success exactly one line on stdout, the CEPH_DIR. So:
#   CEPH_DIR=$(tests/ceph/ceph-up.sh) && . "$CEPH_DIR/env"
# $CEPH_DIR/env (mode 0600) exports CEPH_DIR CEPH_CONF RBDCSI_TEST_MONITORS RBDCSI_TEST_USER
# RBDCSI_TEST_KEY RBDCSI_TEST_POOL RBDCSI_TEST_POOL2 RBDCSI_TEST_FSID.
# On failure: prints the tail of the daemon logs, tears down (ceph-down.sh), exits non-zero.
# Tear down with: CEPH_DIR=... tests/ceph/ceph-down.sh
set -euo pipefail
unset CEPH_ARGS
umask 077

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CMD_TIMEOUT=${CMD_TIMEOUT:-30}
# How long the mon and the OSD may take to come up (an emulated CPU, tests/kernel/, needs more).
UP_TIMEOUT=${UP_TIMEOUT:-60}
MON_ANSWER_TIMEOUT=${MON_ANSWER_TIMEOUT:-10}

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
T_START=$(now_us)
T_PHASE=${T_START}

fmt_us() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }
log() { echo "ceph-up: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
# Prints the time since the previous phase ended, and starts the next phase.
phase() {
	local t
	t=$(now_us)
	log "$(printf '%-34s %6s s  (total %s s)' "$1" "$(fmt_us $((t - T_PHASE)))" \
		"$(fmt_us $((t - T_START)))")"
	T_PHASE=${t}
}

# ---------------------------------------------------------------------------------------------
# Failure handling

CREATED_DIR=0 # set once the directory is ours to tear down on failure
OK=0

# The original stderr: a signal can run the traps inside a command whose stderr goes to
# /dev/null, and the failure report must still be seen. (Daemons do not inherit it.)
exec {ERR_FD}>&2

on_exit() {
	local rc=$?
	[[ ${OK} -eq 1 ]] && return 0
	[[ ${rc} -eq 0 ]] && rc=1
	exec 2>&"${ERR_FD}" >&2
	if [[ ${CREATED_DIR} -eq 1 ]]; then
		local f
		for f in "${CEPH_DIR}/log/ceph-mon.a.log" "${CEPH_DIR}/log/mon.a.stdout" \
			"${CEPH_DIR}/log/ceph-osd.0.log" "${CEPH_DIR}/log/osd.0.stdout"; do
			[[ -s ${f} ]] || continue
			echo "----- last 30 lines of ${f} -----" >&2
			tail -n 30 "${f}" >&2 || true
		done
		log "bring-up failed; tearing down ${CEPH_DIR}"
		CEPH_DIR=${CEPH_DIR} "${HERE}/ceph-down.sh" >&2 || true
	fi
	exit "${rc}"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Mon ports

# Serialize port choice among concurrent bring-ups: the lock (on this script file, so it leaves
# nothing behind) is held until the mon listens on the ports it chose.
exec {LOCK_FD}<"${BASH_SOURCE[0]}"
flock -w 120 "${LOCK_FD}" || die "timed out waiting for the port-selection lock"

declare -A LISTENING=()
load_listening() {
	local addr
	LISTENING=()
	while read -r addr; do
		LISTENING[${addr##*:}]=1
	done < <(ss -Hltn | awk '{ print $4 }')
}
port_valid() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1024 && $1 <= 65535)); }
port_free() { [[ -z ${LISTENING[$1]:-} ]]; }

load_listening
for var in MON_V2_PORT MON_V1_PORT; do
	val=${!var:-}
	[[ -z ${val} ]] && continue
	port_valid "${val}" || die "${var}=${val} is not a port number in 1024-65535"
	port_free "${val}" || die "${var}=${val} is already in use (something listens on it)"
done
if [[ -n ${MON_V2_PORT:-} && ${MON_V2_PORT} == "${MON_V1_PORT:-}" ]]; then
	die "MON_V2_PORT and MON_V1_PORT are both ${MON_V2_PORT}"
fi
# Automatic ports: a random pair in 20000-29999: below the ephemeral range (32768-), away from
# the OSDs' 6800-7300, and skipping ceph-like ports people pick by hand (x3300-x3399,
# x6700-x6899) so a cluster started later on fixed ports does not find them taken.
if [[ -z ${MON_V2_PORT:-} || -z ${MON_V1_PORT:-} ]]; then
	found=0
	for _ in $(seq 200); do
		p=$((20000 + (SRANDOM % 5000) * 2))
		v2=${MON_V2_PORT:-${p}}
		v1=${MON_V1_PORT:-$((p + 1))}
		[[ ${v2} != "${v1}" ]] || continue
		(((p % 10000) / 100 != 33 && (p % 10000) / 100 != 67 && (p % 10000) / 100 != 68)) ||
			continue
		if port_free "${v2}" && port_free "${v1}"; then
			found=1
			break
		fi
	done
	[[ ${found} -eq 1 ]] || die "found no free mon port pair in 20000-29999"
	MON_V2_PORT=${v2}
	MON_V1_PORT=${v1}
fi
log "mon ports: v2 ${MON_V2_PORT}, v1 ${MON_V1_PORT}"
BIND=${CEPH_BIND_ADDR:-127.0.0.1}
[[ ${BIND} =~ ^(127|10)\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
	die "CEPH_BIND_ADDR=${BIND}: only a loopback or a 10.x host-only address"
# 127.0.0.1 is always there (and the Ceph 18.2 matrix's chroot has no ip(8)).
[[ ${BIND} == 127.0.0.1 ]] || ip -o -4 addr show | grep -q " inet ${BIND}/" ||
	die "CEPH_BIND_ADDR=${BIND} is not an address here"
NET=${BIND}/32
[[ ${BIND} == 127.* ]] && NET=127.0.0.0/8
MON_ADDRVEC="[v2:${BIND}:${MON_V2_PORT},v1:${BIND}:${MON_V1_PORT}]"

# ---------------------------------------------------------------------------------------------
# Directory

if [[ -n ${CEPH_DIR:-} ]]; then
	[[ ${CEPH_DIR} == /* ]] || die "CEPH_DIR must be an absolute path: ${CEPH_DIR}"
	# ceph.conf expands $... and splits on some characters: keep the path plain.
	[[ ${CEPH_DIR} =~ ^[A-Za-z0-9._/+-]+$ ]] ||
		die "CEPH_DIR may contain only [A-Za-z0-9._/+-]: ${CEPH_DIR}"
	if [[ -e ${CEPH_DIR} ]]; then
		[[ -d ${CEPH_DIR} && ! -L ${CEPH_DIR} ]] || die "CEPH_DIR is not a directory: ${CEPH_DIR}"
		[[ -z $(ls -A "${CEPH_DIR}") ]] || die "CEPH_DIR is not empty: ${CEPH_DIR}"
	else
		mkdir -p "${CEPH_DIR}"
	fi
	CEPH_DIR=$(realpath -e "${CEPH_DIR}")
	[[ ${CEPH_DIR} =~ ^[A-Za-z0-9._/+-]+$ && ${CEPH_DIR} != / ]] ||
		die "CEPH_DIR resolves to an unusable path: ${CEPH_DIR}"
else
	CEPH_DIR=$(mktemp -d /tmp/rbdcsi-ceph.XXXXXX)
fi
# The marker tells ceph-down.sh that this directory is a cluster directory it may remove.
: >"${CEPH_DIR}/.rbdcsi-ceph"
CREATED_DIR=1
log "CEPH_DIR=${CEPH_DIR}"

D=${CEPH_DIR}
CONF=${D}/ceph.conf
C=(-c "${CONF}")
mkdir -p "${D}"/{mon,osd/ceph-0,log,run,crash,pids}

# Every ceph CLI call: explicit conf, bounded in time.
ceph_() { timeout "${CMD_TIMEOUT}" ceph "${C[@]}" --connect-timeout 10 "$@"; }
rbd_() { timeout "${CMD_TIMEOUT}" rbd "${C[@]}" "$@"; }

# ---------------------------------------------------------------------------------------------
# Config, keys, monmap

FSID=$(uuidgen)
# Debian 13's Ceph 18.2 defaults osd_class_dir to a relative path (lib/<triplet>/rados-classes)
# that the OSD cannot resolve, so librbd's create fails with EOPNOTSUPP (no cls_rbd): name the
# directory that holds the classes. Debian 12's default is right and is left alone.
OSD_CLASS_DIR=""
if ! ceph-conf -D 2>/dev/null | grep -q '^osd_class_dir = /'; then
	for d in /usr/lib/rados-classes /usr/lib/*/rados-classes /usr/lib64/rados-classes; do
		[[ -e ${d}/libcls_rbd.so ]] && OSD_CLASS_DIR=${d} && break
	done
fi
cat >"${CONF}" <<EOF
[global]
fsid = ${FSID}
mon_initial_members = a
mon_host = ${MON_ADDRVEC}
public_network = ${NET}
public_addr = ${BIND}
cluster_addr = ${BIND}
ms_bind_ipv4 = true
ms_bind_ipv6 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
run_dir = ${D}/run
crash_dir = ${D}/crash

[mon]
mon_data = ${D}/mon/\$cluster-\$id
log_file = ${D}/log/\$cluster-\$name.log
mon_cluster_log_file = ${D}/log/\$cluster.log
pid_file = ${D}/run/\$name.pid
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
# no mgr: keep MGR_DOWN from being raised (120 when a mgr is started)
mon_mgr_mkfs_grace = 31536000

[osd]
# A killed client (rbd-fuse in the dead-cluster tests) keeps its watch this long; the default
# 30 s makes every removal after such a test wait.
osd_client_watch_timeout = 5
osd_data = ${D}/osd/\$cluster-\$id
log_file = ${D}/log/\$cluster-\$name.log
pid_file = ${D}/run/\$name.pid
osd_objectstore = memstore
memstore_device_bytes = 4294967296
${OSD_CLASS_DIR:+osd_class_dir = ${OSD_CLASS_DIR}}
bluestore_block_create = true
bluestore_block_size = 10737418240
# the minimum allowed is 896 MiB
osd_memory_target = 1073741824

[mgr]
mgr_data = ${D}/mgr/\$cluster-\$id
log_file = ${D}/log/\$cluster-\$name.log
pid_file = ${D}/run/\$name.pid

[client]
keyring = ${D}/\$cluster.\$name.keyring
EOF

ceph-authtool --create-keyring "${D}/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "${D}/ceph.client.admin.keyring" --gen-key -n client.admin \
	--cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "${D}/mon.keyring" --import-keyring "${D}/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "${FSID}" --addv a "${MON_ADDRVEC}" "${D}/monmap" >/dev/null
phase "config, keyrings, monmap"

# ---------------------------------------------------------------------------------------------
# Mon

timeout "${CMD_TIMEOUT}" ceph-mon "${C[@]}" --mkfs -i a --monmap "${D}/monmap" \
	--keyring "${D}/mon.keyring" >>"${D}/log/mon.a.stdout" 2>&1 || die "ceph-mon --mkfs failed"
phase "mon mkfs"

# Starts a daemon in the foreground of its own session, so $! is its PID. It gets no stdio of
# ours (a caller capturing our output must not wait for it), nor the lock.
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
	echo $! >"${D}/pids/${name}.pid"
}

# True while the daemon whose PID file is pids/$1.pid runs (and is no zombie).
daemon_alive() {
	local pid state
	pid=$(<"${D}/pids/$1.pid")
	state=$(sed 's/.*) //' "/proc/${pid}/stat" 2>/dev/null | cut -c1) || return 1
	[[ -n ${state} && ${state} != Z ]]
}

# wait_for SECS WHAT DAEMON CMD...: polls CMD every 0.1 s until it succeeds; fails when DAEMON
# exits or after SECS seconds.
wait_for() {
	local secs=$1 what=$2 daemon=$3
	shift 3
	local deadline=$(($(now_us) + secs * 1000000))
	until "$@" >/dev/null 2>&1; do
		daemon_alive "${daemon}" || die "${daemon} exited (see ${D}/log/${daemon}.stdout)"
		(($(now_us) < deadline)) || die "timed out after ${secs} s waiting for ${what}"
		sleep 0.1
	done
}
mon_answers() { timeout "${MON_ANSWER_TIMEOUT}" ceph "${C[@]}" --connect-timeout 5 mon stat; }

start_daemon mon.a ceph-mon "${C[@]}" -i a
wait_for "${UP_TIMEOUT}" "the mon to answer" mon.a mon_answers
phase "mon up"
exec {LOCK_FD}<&- # the mon holds its ports now

# ---------------------------------------------------------------------------------------------
# OSD

OSD_UUID=$(uuidgen)
OSD_ID=$(ceph_ osd new "${OSD_UUID}" 2>>"${D}/log/ceph-cli.stderr") || die "ceph osd new failed"
[[ ${OSD_ID} == 0 ]] || die "ceph osd new returned id '${OSD_ID}', expected 0"
ceph-authtool --create-keyring "${D}/osd/ceph-0/keyring" --gen-key -n osd.0 >/dev/null
ceph_ auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
	-i "${D}/osd/ceph-0/keyring" >/dev/null 2>&1 || die "ceph auth add osd.0 failed"
timeout "${CMD_TIMEOUT}" ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "${OSD_UUID}" --no-mon-config \
	>>"${D}/log/osd.0.stdout" 2>&1 || die "ceph-osd --mkfs failed"
phase "osd create + mkfs"

osd_up() { [[ $(ceph_ osd stat -f json 2>/dev/null) == *'"num_up_osds":1,'* ]]; }
start_daemon osd.0 ceph-osd "${C[@]}" -i 0
wait_for "${UP_TIMEOUT}" "the osd to be up" osd.0 osd_up
phase "osd up"

# ---------------------------------------------------------------------------------------------
# Pools, users

for pool in rbd rbd2; do
	ceph_ osd pool create "${pool}" 8 8 replicated >/dev/null 2>&1 ||
		die "ceph osd pool create ${pool} failed"
	ceph_ osd pool set "${pool}" size 1 --yes-i-really-mean-it >/dev/null 2>&1 ||
		die "ceph osd pool set ${pool} size 1 failed"
	# Blocks until the PGs are active: this is the readiness check.
	rbd_ pool init "${pool}" || die "rbd pool init ${pool} failed"
	phase "pool ${pool}"
done

# Lets clone v2 (unprotected parent snapshots) be the default.
if ! ceph_ osd set-require-min-compat-client mimic >/dev/null 2>&1; then
	log "WARNING: ceph osd set-require-min-compat-client mimic failed; clone v2 is not default"
fi

ceph_ auth get-or-create client.csi mon 'profile rbd' \
	osd 'profile rbd pool=rbd, profile rbd pool=rbd2' \
	mgr 'profile rbd pool=rbd, profile rbd pool=rbd2' \
	-o "${D}/ceph.client.csi.keyring" >/dev/null 2>&1 || die "creating client.csi failed"
# The key goes from the keyring to the env file without passing through argv or the log.
CSI_KEY=$(ceph-authtool -p -n client.csi "${D}/ceph.client.csi.keyring") ||
	die "reading the client.csi key failed"
[[ ${CSI_KEY} =~ ^[A-Za-z0-9+/=]+$ ]] || die "the client.csi key looks wrong"
phase "compat, user client.csi"

# ---------------------------------------------------------------------------------------------
# Env file

# RBDCSI_TEST_MONITORS is the mon's address vector, as a --config "monitors" entry may be. An
# untyped "ip:port" on a non-default port is taken as msgr2 only, and with it a wrong key ends
# in a connect timeout instead of EACCES (measured): the typed vector avoids both.
ENV_TMP=${D}/.env.tmp
(
	umask 077
	cat >"${ENV_TMP}" <<EOF
export CEPH_DIR='${D}'
export CEPH_CONF='${CONF}'
export RBDCSI_TEST_MONITORS='${MON_ADDRVEC}'
export RBDCSI_TEST_USER='csi'
export RBDCSI_TEST_KEY='${CSI_KEY}'
export RBDCSI_TEST_POOL='rbd'
export RBDCSI_TEST_POOL2='rbd2'
export RBDCSI_TEST_FSID='${FSID}'
EOF
)
chmod 0600 "${ENV_TMP}"
mv -f "${ENV_TMP}" "${D}/env"

OK=1
log "ready: mon ${MON_ADDRVEC}, pools rbd rbd2, user client.csi; load with: . ${D}/env"
log "tear down with: CEPH_DIR=${D} ${HERE}/ceph-down.sh"
log "$(printf '%-34s %6s s' "total bring-up" "$(fmt_us $(($(now_us) - T_START)))")"
echo "${D}"
