#!/usr/bin/env bash
# make bench (issue 7): how far rbdcsi is from the floor Ceph itself sets, and how it scales.
# Every figure is a ratio to a floor measured side by side in the same run; absolute times are
# printed, never asserted (the exit status only says whether every step ran).
#
#   make bench                       or   B=build tests/bench/run.sh
#   BENCH_N=100 make bench           a quicker run
# (The tools are built with the main Makefile's flags, through tests/bench/bench.mk; a
# sanitizer build is no place for a benchmark, so B is the plain build/.)
#
# Settings (environment):
#   BENCH_N=500            volumes per provisioning run (CreateVolume + DeleteVolume each)
#   BENCH_CONC="1 16 64"   provisioning concurrencies
#   BENCH_ROUNDS=2         slices per concurrency, rbdcsi and the floor alternating
#   BENCH_SIZE_MIB=1024    size of each provisioned volume (DeleteVolume trims every object)
#   BENCH_FILL=10000       volumes in the pool for the "full pool" and ListVolumes figures
#   BENCH_FILL_IMAGES=1    the fill volumes get real (1 MiB) images too, not only journal entries
#   BENCH_FILL_STEPS="1000 2500 5000"  the fill stops at these counts on the way to BENCH_FILL,
#                          and the CreateVolume latency is measured at each
#   BENCH_LAT_N=100        sequential CreateVolume calls timed in the empty and the full pool
#   BENCH_CALLS=10000      calls for the per-call overhead and the footprint growth
#   BENCH_STAGE_CYCLES=7   stage cycles each for the driver and the shell script (root only)
#   BENCH_STARTS=10        starts timed per mode
#   BENCH_JSON=$B/bench.json   where the results go (the previous file is kept as *.prev.json)
#   BENCH_KEEP=1           keep the work directory (logs) under /tmp
#   BENCH_PART=hostile     run only the hostile loads (tests/hostile/hostile.py, no Ceph) and
#                          put their figures into BENCH_JSON under "hostile"
#   BENCH_KERNEL=1         also the krbd/rbd-nbd staging latency in the check-kernel guest
#                          (root; emulated CPU, several minutes; 0 leaves it out)
# Ceph: a throwaway cluster (tests/ceph/ceph-up.sh), torn down on exit, unless
# RBDCSI_TEST_MONITORS (and RBDCSI_TEST_USER, RBDCSI_TEST_KEY, RBDCSI_TEST_POOL, CEPH_CONF) name
# one; then everything the run made there is removed again.
#
# What runs, in order (the tools are tests/bench/loadgen.c, a C gRPC client, and baseline.c,
# bare librbd/librados; see their header comments):
#   1. provisioning: N CreateVolume then N DeleteVolume through the socket at each concurrency,
#      and the baseline (same images, same journal writes, no reads) at the same concurrency,
#      in BENCH_ROUNDS alternating slices; CPU time per volume of the client and the controller;
#      on our own cluster also the OSD's CPU and op counts per volume, and an op-by-op trace of
#      one volume each (OSD log at debug_osd 10);
#   2. staging (root): stage+publish+unpublish+unstage cycles, driver and shell script
#      (tests/bench/stage-shell.sh) alternating, ext4 on a 1 GiB volume, rbd-fuse mapper, in
#      the empty pool (and 3 cycles each again after step 4, with the pool full);
#   3. CreateVolume latency, sequential, in the empty pool, at each of BENCH_FILL_STEPS, then
#      with BENCH_FILL volumes in it;
#   4. ListVolumes over the full pool, max_entries 500, and the bare reads it needs (one at a
#      time, and 32 in flight);
#   5. Probe latency; the controller and node plugins' RSS and threads idle, connected, after
#      BENCH_CALLS and after 2 x BENCH_CALLS calls; the floors: a bare librados+librbd client,
#      and processes that only load rbdcsi's libraries (with and without librbd/librados);
#   6. start-up time to a served Probe, controller and node;
#   6b. group snapshots: CreateVolumeGroupSnapshot of 2 and 8 volumes vs the same snapshots
#      one by one (tests/bench/group_snapshot.py; BENCH_GROUP_ROUNDS=3, BENCH_GROUP_WRITE_MIB=16);
#   7. the hostile loads of tests/hostile/hostile.py (peak RSS per load, Probe p50/p99).
#   7b. QoS accuracy: achieved vs configured for 3 write-IOPS limits and a bytes/s limit set
#      with ControllerModifyVolume, through an open librbd client (tests/bench/qos.py);
#   8. (root, BENCH_KERNEL=1) NodeStageVolume latency through krbd and rbd-nbd on a real kernel:
#      tests/kernel/run.sh bench, in the qemu guest; EMULATED CPU, marked so in the JSON.
# Leaves nothing behind: plugins stopped, mounts, loop devices and rbd-fuse processes of the work
# directory removed, volumes deleted, the cluster torn down (or the fill removed from it).
set -euo pipefail
unset CEPH_ARGS
umask 077

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "${HERE}/../.." && pwd)
cd "${TOP}"
B=${B:-build}
BENCH_N=${BENCH_N:-500}
BENCH_CONC=${BENCH_CONC:-1 16 64}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_SIZE_MIB=${BENCH_SIZE_MIB:-1024}
BENCH_FILL=${BENCH_FILL:-10000}
BENCH_FILL_IMAGES=${BENCH_FILL_IMAGES:-1}
BENCH_FILL_STEPS=${BENCH_FILL_STEPS:-1000 2500 5000}
BENCH_LAT_N=${BENCH_LAT_N:-100}
BENCH_CALLS=${BENCH_CALLS:-10000}
BENCH_STAGE_CYCLES=${BENCH_STAGE_CYCLES:-7}
BENCH_STARTS=${BENCH_STARTS:-10}
BENCH_JSON=${BENCH_JSON:-${B}/bench.json}
BENCH_KERNEL=${BENCH_KERNEL:-1}
SIZE=$((BENCH_SIZE_MIB * 1024 * 1024))

LOADGEN=${TOP}/${B}/bench/loadgen
BASELINE=${TOP}/${B}/bench/baseline
RBDCSI=${TOP}/${B}/rbdcsi

now_us() {
	local t=${EPOCHREALTIME}
	echo "${t/./}"
}
T_START=$(now_us)
say() { printf 'bench: [%4ds] %s\n' $((($(now_us) - T_START) / 1000000)) "$*" >&2; }
die() {
	say "ERROR: $*"
	exit 1
}

# ---------------------------------------------------------------------------------------------
# Build

say "building (make all bench-tools)"
make --no-print-directory -f Makefile -f tests/bench/bench.mk all bench-tools >&2 ||
	die "build failed"

# The hostile loads (issue 13): peak RSS per load, Probe p50/p99 while every worker waits on a
# dead cluster. Its own plugin, no Ceph.
run_hostile() {
	/usr/bin/python3 "${HERE}/../hostile/hostile.py" --rbdcsi "${RBDCSI}" --json "$1" >&2
}
if [[ ${BENCH_PART:-} == hostile ]]; then
	HOSTILE_TMP=$(mktemp /tmp/rbdcsi-hostile-bench.XXXXXX)
	say "hostile loads (tests/hostile/hostile.py)"
	run_hostile "${HOSTILE_TMP}" || die "the hostile loads did not run"
	[[ -s ${BENCH_JSON} ]] || echo '{}' >"${BENCH_JSON}"
	jq --slurpfile h "${HOSTILE_TMP}" '.hostile = $h[0]' "${BENCH_JSON}" >"${HOSTILE_TMP}.all" &&
		mv "${HOSTILE_TMP}.all" "${BENCH_JSON}"
	rm -f "${HOSTILE_TMP}"
	say "done; .hostile written to ${BENCH_JSON}"
	exit 0
fi

# ---------------------------------------------------------------------------------------------
# Work directory, cleanup

WORK=$(mktemp -d /tmp/rbdcsi-bench.XXXXXX)
RES=${WORK}/res
mkdir -p "${RES}" "${WORK}/kubelet/plugins" "${WORK}/kubelet/pods"
OWN_CEPH=0
CEPH_DIR_OWN=
CTRL_PID=
NODE_PID=
FILLED=0
VOLUMES_TODO=${WORK}/volumes.todo # volume ids to delete on the way out
: >"${VOLUMES_TODO}"

# Mounts at or below the work directory, deepest first.
work_mounts() {
	awk -v w="${WORK}" '{ p = $5; gsub(/\\040/, " ", p); if (index(p, w) == 1) print p }' \
		/proc/self/mountinfo | sort -r
}

# rbd-fuse processes whose command line names the work directory.
work_fuse_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ $(cat "${p}/comm" 2>/dev/null) == rbd-fuse ]] || continue
		tr '\0' ' ' <"${p}/cmdline" 2>/dev/null | grep -qF "${WORK}" && echo "${p#/proc/}"
	done
	return 0
}

stop_pid() {
	local pid=$1 i
	[[ -n ${pid} ]] && kill -0 "${pid}" 2>/dev/null || return 0
	kill -TERM "${pid}" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "${pid}" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "${pid}" 2>/dev/null && kill -KILL "${pid}" 2>/dev/null
	wait "${pid}" 2>/dev/null || true
}

cleanup() {
	local rc=$? m l p id left=0
	set +e
	trap - EXIT INT TERM
	# CSI volumes still there (a failure mid-run), while the controller still serves.
	if [[ -s ${VOLUMES_TODO} && -n ${CTRL_PID} ]] && kill -0 "${CTRL_PID}" 2>/dev/null; then
		while read -r id; do
			[[ -n ${id} ]] || continue
			"${LOADGEN}" --endpoint "unix://${WORK}/ctrl.sock" delete "${id}" \
				<<<"${KEY}" >/dev/null || left=1
		done <"${VOLUMES_TODO}"
	fi
	stop_pid "${CTRL_PID}"
	stop_pid "${NODE_PID}"
	# Host state below the work directory: mounts, loop devices, rbd-fuse (by pid).
	for m in $(work_mounts); do umount "${m}" 2>/dev/null || umount -l "${m}"; done
	for l in $(losetup -ln -O NAME,BACK-FILE 2>/dev/null | awk -v w="${WORK}" \
		'index($2, w) == 1 { print $1 }'); do
		losetup -d "${l}"
	done
	for m in $(work_mounts); do umount "${m}" 2>/dev/null || umount -l "${m}"; done
	for p in $(work_fuse_pids); do kill -KILL "${p}" 2>/dev/null; done
	# The fill, on a cluster that is not ours.
	if [[ ${FILLED} -eq 1 && ${OWN_CEPH} -eq 0 ]]; then
		say "removing the fill volumes from the cluster"
		"${BASELINE}" "${BASE_ARGS[@]}" unfill 16 "${FILL_IMAGES_ARG[@]}" <<<"${KEY}" \
			>/dev/null || left=1
	fi
	if [[ ${OWN_CEPH} -eq 1 ]]; then
		CEPH_DIR=${CEPH_DIR_OWN} tests/ceph/ceph-down.sh 2>>"${WORK}/ceph-down.log" || left=1
	fi
	[[ ${left} -eq 0 ]] || say "WARNING: something may be left behind (see above)"
	if [[ -n $(work_mounts) ]]; then
		say "WARNING: mounts left below ${WORK}; not removing it"
	elif [[ ${BENCH_KEEP:-0} == 1 || ${rc} -ne 0 ]]; then
		say "logs kept in ${WORK}"
	else
		rm -rf "${WORK}"
	fi
	exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Ceph

if [[ -z ${RBDCSI_TEST_MONITORS:-} ]]; then
	say "bringing up a throwaway Ceph (tests/ceph/ceph-up.sh)"
	CEPH_DIR_OWN=$(tests/ceph/ceph-up.sh 2>"${WORK}/ceph-up.log") || {
		cat "${WORK}/ceph-up.log" >&2
		die "ceph-up.sh failed"
	}
	OWN_CEPH=1
	# shellcheck disable=SC1091
	. "${CEPH_DIR_OWN}/env"
fi
: "${RBDCSI_TEST_USER:?}" "${RBDCSI_TEST_KEY:?}"
POOL=${RBDCSI_TEST_POOL:-rbd}
MONITORS=${RBDCSI_TEST_MONITORS}
# The key goes to our tools on stdin only; no child gets it through the environment.
KEY=${RBDCSI_TEST_KEY}
unset RBDCSI_TEST_KEY
BASE_ARGS=(--monitors "${MONITORS}" --user "${RBDCSI_TEST_USER}" --pool "${POOL}")
FILL_IMAGES_ARG=()
[[ ${BENCH_FILL_IMAGES} == 1 ]] && FILL_IMAGES_ARG=(--images)
LG=("${LOADGEN}" --endpoint "unix://${WORK}/ctrl.sock" --cluster bench --pool "${POOL}"
	--user "${RBDCSI_TEST_USER}" --size "${SIZE}")
OSD_ASOK=
[[ ${OWN_CEPH} -eq 1 && -S ${CEPH_DIR_OWN}/run/ceph-osd.0.asok ]] &&
	OSD_ASOK=${CEPH_DIR_OWN}/run/ceph-osd.0.asok

printf '[{"clusterID": "bench", "monitors": ["%s"]}]\n' "${MONITORS}" >"${WORK}/config.json"

# OSD op counters ({"r":..,"w":..,"rw":..}), or {} without an admin socket of ours.
osd_ops() {
	if [[ -n ${OSD_ASOK} ]]; then
		ceph --admin-daemon "${OSD_ASOK}" perf dump 2>/dev/null |
			jq -c '{r: .osd.op_r, w: .osd.op_w, rw: .osd.op_rw}'
	else
		echo '{}'
	fi
}

# CPU time (user + system, in clock ticks) a process has used, 0 when there is none.
cpu_ticks() {
	if [[ -n ${1:-} && -r /proc/$1/stat ]]; then
		awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
	else
		echo 0
	fi
}
CLK_TCK=$(getconf CLK_TCK)
OSD_PID=
[[ ${OWN_CEPH} -eq 1 && -r ${CEPH_DIR_OWN}/pids/osd.0.pid ]] &&
	OSD_PID=$(<"${CEPH_DIR_OWN}/pids/osd.0.pid")

# optrace NAME CMD...: the OSD ops CMD causes, one a line (object [ops]), with ids and uuids
# masked, from the OSD log at debug_osd 10 (own cluster only; nothing otherwise).
optrace() {
	local name=$1 log start
	shift
	log=${CEPH_DIR_OWN:-/nonexistent}/log/ceph-osd.0.log
	if [[ -z ${OSD_ASOK} || ! -f ${log} ]]; then
		"$@" >/dev/null
		return
	fi
	ceph --admin-daemon "${OSD_ASOK}" config set debug_osd 10 >/dev/null
	start=$(wc -l <"${log}")
	"$@" >/dev/null
	ceph --admin-daemon "${OSD_ASOK}" config set debug_osd 1/5 >/dev/null
	tail -n +$((start + 1)) "${log}" | grep -o ' do_op osd_op(client[^)]*)' | sed -E \
		-e 's/ do_op osd_op\(client\.[0-9]+\.[0-9]+:[0-9]+ [0-9.]+ [^:]*:[0-9a-f]*:::([^:]*):head \[([^]]*)\].*/\1 [\2]/' \
		-e 's/rbd_data\.[0-9a-f]+\.[0-9a-f]+/rbd_data.X/' \
		-e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g' \
		-e 's/(rbd_header|rbd_object_map|journal)\.[0-9a-f]+/\1.ID/' \
		-e 's/bench-base-[0-9]+/bench-base-N/' -e 's/ in=[0-9]+b//g' \
		-e 's/cookie [0-9]+/cookie C/' -e 's/ v[0-9]+\]/]/' >"${RES}/trace-${name}.txt"
}

# footprint NAME PID: RSS, anonymous memory, threads, and the biggest mappings.
footprint() {
	local name=$1 pid=$2
	awk -v name="${name}" '
		FILENAME ~ /status$/ && /^VmRSS:/ { rss = $2 }
		FILENAME ~ /status$/ && /^Threads:/ { thr = $2 }
		FILENAME ~ /status$/ && /^VmHWM:/ { hwm = $2 }
		FILENAME ~ /smaps$/ && /^[0-9a-f]+-[0-9a-f]+ / {
			m = $6; if (m == "") m = "[anon]"; sub(".*/", "", m)
		}
		FILENAME ~ /smaps$/ && /^Rss:/ { by[m] += $2 }
		FILENAME ~ /smaps$/ && /^Anonymous:/ { anon += $2 }
		END {
			printf "{\"name\":\"%s\",\"rss_kb\":%d,\"hwm_kb\":%d,\"anon_kb\":%d,\"threads\":%d,\"top\":{", name, rss, hwm, anon, thr
			n = 0
			for (k = 0; k < 6; k++) {
				best = ""; bv = -1
				for (x in by) if (by[x] > bv) { bv = by[x]; best = x }
				if (best == "") break
				printf "%s\"%s\":%d", (n++ ? "," : ""), best, bv
				delete by[best]
			}
			printf "}}\n"
		}' "/proc/${pid}/status" "/proc/${pid}/smaps" >"${RES}/fp-${name}.json"
}

start_plugin() { # mode socket log -> pid in STARTED_PID
	local mode=$1 sock=$2 log=$3
	"${RBDCSI}" --mode="${mode}" --endpoint="unix://${sock}" --config="${WORK}/config.json" \
		--nodeid=bench-node --state-dir="${WORK}/state" --kubelet-dir="${WORK}/kubelet" \
		</dev/null >>"${log}" 2>&1 &
	STARTED_PID=$!
	# Ready when a Probe through the socket answers.
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -S ${sock} ]] && "${LOADGEN}" --endpoint "unix://${sock}" --timeout 5 probe 1 \
			>/dev/null 2>&1 && return 0
		kill -0 "${STARTED_PID}" 2>/dev/null || die "rbdcsi --mode=${mode} exited: $(tail -5 "${log}")"
		sleep 0.05
	done
	die "rbdcsi --mode=${mode} did not become ready"
}

jget() { jq -r "$2" "${RES}/$1.json"; }

echo "{\"start\":\"$(date -Is)\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" \
	>"${RES}/env-start.json"

# ---------------------------------------------------------------------------------------------
# 1. Provisioning

# The footprint floors: processes that only load rbdcsi's libraries (with and without
# librbd/librados).
for idle in idle-libs idle-libs-noceph; do
	"${TOP}/${B}/bench/${idle}" &
	IDLE_PID=$!
	for ((i = 0; i < 100; i++)); do
		[[ $(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/${IDLE_PID}/stat") == S ]] && break
		sleep 0.01
	done
	sleep 0.1
	footprint "${idle}" "${IDLE_PID}"
	kill "${IDLE_PID}"
	wait "${IDLE_PID}" 2>/dev/null || true
done

start_plugin controller "${WORK}/ctrl.sock" "${WORK}/controller.log"
CTRL_PID=${STARTED_PID}
footprint controller-idle "${CTRL_PID}"

# One volume first: the controller connects to the cluster. It stays for the footprint calls.
"${LG[@]}" create bench-fp-volume <<<"${KEY}" >"${RES}/fp-volume.json" ||
	die "CreateVolume failed"
FP_VOLUME=$(jget fp-volume .volume_id)
echo "${FP_VOLUME}" >>"${VOLUMES_TODO}"
footprint controller-connected "${CTRL_PID}"
"${BASELINE}" "${BASE_ARGS[@]}" footprint <<<"${KEY}" >"${RES}/fp-baseline.json" ||
	die "baseline footprint failed"

# What one volume's create + delete asks of the OSD, op by op (own cluster only).
optrace rbdcsi "${LG[@]}" --prefix bench-trace provision 1 1 <<<"${KEY}"
optrace baseline "${BASELINE}" "${BASE_ARGS[@]}" provision 1 1 <<<"${KEY}"

for c in ${BENCH_CONC}; do
	# BENCH_ROUNDS slices, rbdcsi and the floor alternating, so that a change in the machine's
	# load during the run hits both alike; the figures are over all slices together.
	for ((r = 0; r < BENCH_ROUNDS; r++)); do
		n=$((BENCH_N / BENCH_ROUNDS + (r < BENCH_N % BENCH_ROUNDS ? 1 : 0)))
		((n > 0)) || continue
		say "provisioning: ${n} volumes at concurrency ${c}: rbdcsi (slice $((r + 1))/${BENCH_ROUNDS})"
		o0=$(osd_ops)
		k0=$(cpu_ticks "${CTRL_PID}")
		d0=$(cpu_ticks "${OSD_PID}")
		"${LG[@]}" --prefix "bench-c${c}-r${r}" --samples "${RES}/prov-rbdcsi-${c}.samples" \
			provision "${n}" "${c}" <<<"${KEY}" >"${RES}/prov-rbdcsi-${c}-r${r}.json" ||
			die "provisioning through rbdcsi failed"
		o1=$(osd_ops)
		k1=$(cpu_ticks "${CTRL_PID}")
		d1=$(cpu_ticks "${OSD_PID}")
		say "provisioning: ${n} volumes at concurrency ${c}: baseline (slice $((r + 1))/${BENCH_ROUNDS})"
		"${BASELINE}" "${BASE_ARGS[@]}" --samples "${RES}/prov-baseline-${c}.samples" \
			provision "${n}" "${c}" <<<"${KEY}" >"${RES}/prov-baseline-${c}-r${r}.json" ||
			die "baseline provisioning failed"
		o2=$(osd_ops)
		d2=$(cpu_ticks "${OSD_PID}")
		echo "{\"rbdcsi_before\":${o0},\"rbdcsi_after\":${o1},\"baseline_after\":${o2}," \
			"\"controller_cpu_s\":$(((k1 - k0) * 1000 / CLK_TCK))e-3," \
			"\"osd_cpu_s_rbdcsi\":$(((d1 - d0) * 1000 / CLK_TCK))e-3," \
			"\"osd_cpu_s_baseline\":$(((d2 - d1) * 1000 / CLK_TCK))e-3," \
			"\"osd_measured\":$([[ -n ${OSD_PID} ]] && echo true || echo false)}" \
			>"${RES}/ops-${c}-r${r}.json"
	done
done
footprint controller-provisioned "${CTRL_PID}"

# ---------------------------------------------------------------------------------------------
# 2. Staging (root): in the empty pool, and a few cycles again once the pool is full (rbd-fuse
# lists the whole pool on every lookup of its image file)

start_plugin node "${WORK}/node.sock" "${WORK}/node.log"
NODE_PID=${STARTED_PID}
footprint node-idle "${NODE_PID}"

STAGING=0
if [[ $(id -u) -eq 0 ]]; then
	STAGING=1
	"${LG[@]}" --size $((1024 * 1024 * 1024)) create bench-stage-driver <<<"${KEY}" \
		>"${RES}/stage-volume-driver.json" || die "CreateVolume failed"
	jget stage-volume-driver .volume_id >>"${VOLUMES_TODO}"
	"${LG[@]}" --size $((1024 * 1024 * 1024)) create bench-stage-shell <<<"${KEY}" \
		>"${RES}/stage-volume-shell.json" || die "CreateVolume failed"
	jget stage-volume-shell .volume_id >>"${VOLUMES_TODO}"
	SH_IMAGE=$(jget stage-volume-shell .context | tr , '\n' | sed -n 's/^imageName=//p')
	mkdir -p "${WORK}/shell" "${WORK}/kubelet/pods/bench-pod"
else
	say "staging: skipped (needs root)"
fi

# stage_cycles SUFFIX K: K cycles each, the driver and the shell script alternating.
stage_cycles() {
	local suffix=$1 k=$2 i
	: >"${RES}/stage-driver${suffix}.jsonl"
	: >"${RES}/stage-shell${suffix}.jsonl"
	for ((i = 0; i < k; i++)); do
		"${LOADGEN}" --endpoint "unix://${WORK}/ctrl.sock" \
			--node-endpoint "unix://${WORK}/node.sock" --user "${RBDCSI_TEST_USER}" \
			--volume-id "$(jget stage-volume-driver .volume_id)" \
			--context "$(jget stage-volume-driver .context)" \
			--staging "${WORK}/kubelet/plugins/bench-staging" \
			--target "${WORK}/kubelet/pods/bench-pod/vol" stage 1 <<<"${KEY}" \
			>>"${RES}/stage-driver${suffix}.jsonl" || die "stage cycle through rbdcsi failed"
		"${HERE}/stage-shell.sh" 1 "${MONITORS}" "${RBDCSI_TEST_USER}" "${POOL}" \
			"${SH_IMAGE}" "${WORK}/shell" <<<"${KEY}" >>"${RES}/stage-shell${suffix}.jsonl" ||
			die "stage cycle by the shell script failed"
	done
}

if [[ ${STAGING} -eq 1 ]]; then
	say "staging: ${BENCH_STAGE_CYCLES} cycles each, rbdcsi and the shell script, alternating"
	stage_cycles "" "${BENCH_STAGE_CYCLES}"
	footprint node-staged "${NODE_PID}"
fi

# ---------------------------------------------------------------------------------------------
# 3. CreateVolume latency: empty pool, then full

# lat_pair NAME: BENCH_LAT_N sequential CreateVolume (+ DeleteVolume) through rbdcsi and the
# same through the floor, in 5 alternating slices (so that the machine's load swings hit both
# alike); every latency goes to lat-NAME-{rbdcsi,baseline}.samples, which report.py reads.
lat_pair() {
	local name=$1 s k
	for ((s = 0; s < 5; s++)); do
		k=$((BENCH_LAT_N / 5 + (s < BENCH_LAT_N % 5 ? 1 : 0)))
		((k > 0)) || continue
		o0=$(osd_ops)
		"${LG[@]}" --prefix "bench-lat-${name}-${s}" --samples "${RES}/lat-${name}-rbdcsi.samples" \
			provision "${k}" 1 <<<"${KEY}" >"${RES}/lat-${name}-rbdcsi.json" ||
			die "CreateVolume latency run failed"
		# OSD ops of these calls (own cluster): unlike latency, not moved by the machine's load.
		echo "{\"n\":${k},\"before\":${o0},\"after\":$(osd_ops)}" >>"${RES}/ops-lat-${name}.jsonl"
		"${BASELINE}" "${BASE_ARGS[@]}" --samples "${RES}/lat-${name}-baseline.samples" \
			provision "${k}" 1 <<<"${KEY}" >"${RES}/lat-${name}-baseline.json" ||
			die "baseline latency run failed"
	done
}

say "CreateVolume latency, empty pool: ${BENCH_LAT_N} sequential"
lat_pair empty

# The fill in steps (BENCH_FILL_STEPS, then BENCH_FILL), the latency measured at each: the
# curve from the empty pool to the full one, in one run.
FILLED=1
filled=0
for step in ${BENCH_FILL_STEPS} ${BENCH_FILL}; do
	((step > filled && step <= BENCH_FILL)) || continue
	say "filling the pool to ${step} volumes (journal entries$([[ ${BENCH_FILL_IMAGES} == 1 ]] && echo ' and images'))"
	"${BASELINE}" "${BASE_ARGS[@]}" fill $((step - filled)) 16 --from "${filled}" \
		"${FILL_IMAGES_ARG[@]}" <<<"${KEY}" >"${RES}/fill-${step}.json" || die "fill failed"
	filled=${step}
	((step < BENCH_FILL)) || break
	say "CreateVolume latency, ${step} volumes in the pool: ${BENCH_LAT_N} sequential"
	lat_pair "step-${step}"
done
jq -s '{n: (map(.n) | add), conc: .[0].conc, directory_s: (map(.directory_s) | add),
	entries_s: (map(.entries_s) | add), images: .[0].images, images_s: (map(.images_s) | add),
	steps: length}' "${RES}"/fill-*.json >"${RES}/fill.json"

say "CreateVolume latency, ${BENCH_FILL} volumes in the pool: ${BENCH_LAT_N} sequential"
lat_pair full

# ---------------------------------------------------------------------------------------------
# 4. ListVolumes

say "ListVolumes over the full pool, max_entries 500"
o0=$(osd_ops)
"${LG[@]}" list 500 >"${RES}/list-rbdcsi.json" || die "ListVolumes failed"
o1=$(osd_ops)
"${BASELINE}" "${BASE_ARGS[@]}" listscan 500 <<<"${KEY}" >"${RES}/list-baseline.json" ||
	die "baseline list scan failed"
"${BASELINE}" "${BASE_ARGS[@]}" listscan 500 --inflight 32 <<<"${KEY}" \
	>"${RES}/list-baseline-pipelined.json" || die "baseline list scan failed"
echo "{\"rbdcsi_before\":${o0},\"rbdcsi_after\":${o1}}" >"${RES}/ops-list.json"

if [[ ${STAGING} -eq 1 ]]; then
	say "staging in the full pool: 3 cycles each"
	stage_cycles -full 3
	for v in stage-volume-driver stage-volume-shell; do
		"${LG[@]}" delete "$(jget "${v}" .volume_id)" <<<"${KEY}" || die "DeleteVolume failed"
		sed -i "/^$(jget "${v}" .volume_id)\$/d" "${VOLUMES_TODO}"
	done
fi

# ---------------------------------------------------------------------------------------------
# 5. Per-call overhead, footprint

say "Probe: ${BENCH_CALLS} sequential calls"
"${LG[@]}" probe "${BENCH_CALLS}" >"${RES}/probe-controller.json" || die "Probe run failed"
say "controller: 2 x ${BENCH_CALLS} calls (footprint growth)"
"${LG[@]}" --volume-id "${FP_VOLUME}" calls "${BENCH_CALLS}" 4 controller <<<"${KEY}" \
	>"${RES}/calls-controller-1.json" || die "controller calls failed"
footprint controller-calls1 "${CTRL_PID}"
"${LG[@]}" --volume-id "${FP_VOLUME}" calls "${BENCH_CALLS}" 4 controller <<<"${KEY}" \
	>"${RES}/calls-controller-2.json" || die "controller calls failed"
footprint controller-calls2 "${CTRL_PID}"

NLG=("${LOADGEN}" --endpoint "unix://${WORK}/node.sock" --target "${WORK}/kubelet/pods/none/vol")
"${NLG[@]}" probe "${BENCH_CALLS}" >"${RES}/probe-node.json" || die "Probe run failed"
say "node: 2 x ${BENCH_CALLS} calls (footprint growth)"
"${NLG[@]}" calls "${BENCH_CALLS}" 4 node >"${RES}/calls-node-1.json" || die "node calls failed"
footprint node-calls1 "${NODE_PID}"
"${NLG[@]}" calls "${BENCH_CALLS}" 4 node >"${RES}/calls-node-2.json" || die "node calls failed"
footprint node-calls2 "${NODE_PID}"

"${LG[@]}" delete "${FP_VOLUME}" <<<"${KEY}" || die "DeleteVolume failed"
: >"${VOLUMES_TODO}"

# ---------------------------------------------------------------------------------------------
# 6. Start-up

say "start-up: ${BENCH_STARTS} starts each, controller and node"
"${LOADGEN}" --endpoint "unix://${WORK}/start.sock" startup "${BENCH_STARTS}" -- "${RBDCSI}" \
	--mode=controller --endpoint="unix://${WORK}/start.sock" --config="${WORK}/config.json" \
	>"${RES}/startup-controller.json" || die "controller start-up run failed"
"${LOADGEN}" --endpoint "unix://${WORK}/start.sock" startup "${BENCH_STARTS}" -- "${RBDCSI}" \
	--mode=node --nodeid=bench-node --endpoint="unix://${WORK}/start.sock" \
	--config="${WORK}/config.json" --state-dir="${WORK}/state-start" \
	--kubelet-dir="${WORK}/kubelet" >"${RES}/startup-node.json" || die "node start-up run failed"

# ---------------------------------------------------------------------------------------------
# 6b. Group snapshots (issue 15): CreateVolumeGroupSnapshot of 2 and 8 volumes against the same
# snapshots taken one by one, alternating rounds (tests/bench/group_snapshot.py; python stubs
# as tests/run-integration.sh makes them).

if [[ ! -f ${TOP}/build/py/csi_pb2_grpc.py ]]; then
	mkdir -p "${TOP}/build/py"
	/usr/bin/python3 -m grpc_tools.protoc -I"${TOP}/build/proto" -I/usr/include \
		--python_out="${TOP}/build/py" --grpc_python_out="${TOP}/build/py" \
		"${TOP}/build/proto/csi.proto"
fi
say "group snapshots of 2 and 8 volumes vs one by one (tests/bench/group_snapshot.py)"
/usr/bin/python3 "${HERE}/group_snapshot.py" --endpoint "unix://${WORK}/ctrl.sock" \
	--cluster bench --pool "${POOL}" --user "${RBDCSI_TEST_USER}" --monitors "${MONITORS}" \
	--json "${RES}/group-snapshot.json" <<<"${KEY}" >&2 || die "group snapshot run failed"

# ---------------------------------------------------------------------------------------------
# 7. Hostile loads

say "hostile loads (tests/hostile/hostile.py)"
run_hostile "${RES}/hostile.json" || die "the hostile loads did not run"

# ---------------------------------------------------------------------------------------------
# 7b. QoS accuracy (issue 15): per-volume limits set by ControllerModifyVolume, achieved vs
# configured through a librbd client that has the image open (tests/bench/qos.py)

say "QoS accuracy (tests/bench/qos.py)"
/usr/bin/python3 "${HERE}/qos.py" --rbdcsi "${RBDCSI}" --monitors "${MONITORS}" \
	--user "${RBDCSI_TEST_USER}" --pool "${POOL}" --build "${B}" --json "${RES}/qos.json" \
	<<<"${KEY}" >&2 || die "the QoS accuracy run failed"

# ---------------------------------------------------------------------------------------------
# Stop, check, report

stop_pid "${CTRL_PID}"
CTRL_PID=
stop_pid "${NODE_PID}"
NODE_PID=
if [[ ${FILLED} -eq 1 && ${OWN_CEPH} -eq 0 ]]; then
	say "removing the fill volumes"
	"${BASELINE}" "${BASE_ARGS[@]}" unfill 16 "${FILL_IMAGES_ARG[@]}" <<<"${KEY}" \
		>"${RES}/unfill.json" || die "unfill failed"
fi
FILLED=0

# Left behind on this host?
LEFT=$(
	work_mounts
	losetup -ln -O NAME,BACK-FILE 2>/dev/null | awk -v w="${WORK}" 'index($2, w) == 1'
	work_fuse_pids
)
[[ -z ${LEFT} ]] || die "left behind: ${LEFT}"
# Left in the journal? (names bench-*; on our own cluster the fill goes with the cluster)
if [[ -n ${CEPH_CONF:-} ]]; then
	JLEFT=$(rados -c "${CEPH_CONF}" -p "${POOL}" listomapkeys rbdcsi.volumes 2>/dev/null |
		grep '^bench-' | { if [[ ${OWN_CEPH} -eq 1 ]]; then grep -v '^bench-fill-'; else cat; fi; } |
		grep -c . || true)
	[[ ${JLEFT} -eq 0 ]] || die "${JLEFT} bench volumes left in the journal of pool ${POOL}"
	rados -c "${CEPH_CONF}" -p "${POOL}" stat rbdbench.volumes >/dev/null 2>&1 &&
		die "rbdbench.volumes left in pool ${POOL}"
fi

# ---------------------------------------------------------------------------------------------
# Staging latency on a real kernel (krbd, rbd-nbd): in the check-kernel guest, its own Ceph
# inside. Emulated CPU (qemu TCG): the absolute figures say how the two mappers compare with
# each other there, not how fast a real node is.
if [[ ${BENCH_KERNEL} == 1 && ${EUID} -eq 0 ]]; then
	say "staging latency on a real kernel (tests/kernel/run.sh bench; qemu TCG, minutes)"
	B=${B} RBDCSI_KERNEL_BENCH_OUT="${RES}/kernel-staging.json" "${TOP}/tests/kernel/run.sh" \
		bench >&2 || say "WARNING: the real-kernel staging figures failed; left out"
fi

BIN_SHA=$(sha256sum "${RBDCSI}" | cut -c1-16)
DIRTY=$(git status --porcelain -- driver plugin 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')
SETTINGS=$(jq -nc --arg bin "${BIN_SHA}" --arg dirty "${DIRTY}" --arg n "${BENCH_N}" --arg conc "${BENCH_CONC}" --arg size "${BENCH_SIZE_MIB}" \
	--arg fill "${BENCH_FILL}" --arg fimg "${BENCH_FILL_IMAGES}" --arg lat "${BENCH_LAT_N}" \
	--arg rounds "${BENCH_ROUNDS}" --arg calls "${BENCH_CALLS}" --arg cyc "${BENCH_STAGE_CYCLES}" --arg st "${BENCH_STARTS}" \
	--arg own "${OWN_CEPH}" --arg ver "$(git describe --tags --always --dirty 2>/dev/null)" \
	--arg nproc "$(nproc)" --arg la "$(cut -d' ' -f1-3 /proc/loadavg)" --arg fin "$(date -Is)" \
	'{n: ($n|tonumber), rounds: ($rounds|tonumber), conc: ($conc|split(" ")|map(select(. != "")|tonumber)),
	  size_mib: ($size|tonumber), fill: ($fill|tonumber), fill_images: ($fimg == "1"),
	  lat_n: ($lat|tonumber), calls: ($calls|tonumber), stage_cycles: ($cyc|tonumber),
	  starts: ($st|tonumber), own_ceph: ($own == "1"), version: $ver, nproc: ($nproc|tonumber),
	  loadavg_end: $la, finished: $fin, rbdcsi_sha256: $bin,
	  uncommitted: ($dirty|split(" ")|map(select(. != "")))}')
echo "${SETTINGS}" >"${RES}/settings.json"
say "done; writing ${BENCH_JSON}"
[[ -f ${BENCH_JSON} ]] && cp -f "${BENCH_JSON}" "${BENCH_JSON%.json}.prev.json"
/usr/bin/python3 "${HERE}/report.py" "${RES}" "${BENCH_JSON}"
