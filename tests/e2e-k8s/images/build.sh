#!/usr/bin/env bash
# Build the container images of the Kubernetes e2e test from files of this host, without a
# registry or an image tool: each image is a docker-archive tarball (manifest.json, config
# <sha256>.json, <diff_id>/layer.tar) made with tar and sha256sum, ready for
# `ctr -n k8s.io images import OUTDIR/<name>.tar`.
#
#   tests/e2e-k8s/images/build.sh OUTDIR [BINDIR]
#
# Images (all amd64/linux, one uncompressed layer, files owned by root unless said):
#   OUTDIR/pause.tar     localhost/pause:e2e     /pause = Debian's static catatonit,
#                                                Entrypoint ["/pause","-P"] (pause mode)
#   OUTDIR/busybox.tar   localhost/busybox:e2e   /bin/busybox (Debian busybox-static) and a
#                                                symlink in /bin for each of its applets,
#                                                /etc/passwd+group (root), Cmd ["sh"]
#   OUTDIR/postgres.tar  localhost/postgres:e2e  PostgreSQL 15 from the host's Debian package
#                                                with the shared libraries it needs (host paths
#                                                kept), busybox as above, user postgres =
#                                                999:999 (the image's User), helper
#                                                /usr/local/bin/e2e-pg (see its header below)
#   OUTDIR/sidecar-<name>.tar  (with BINDIR: the Go binaries of tests/e2e-k8s/build.sh) one
#                                image per CSI sidecar that deploy/kubernetes references, named
#                                exactly as the manifests name it (registry.k8s.io/sig-storage/
#                                <name>:<tag>), so the shipped manifests find it without a
#                                pull: /<name> (the static binary; csi-node-driver-registrar is
#                                tools/registrar), /etc/passwd+group, /tmp, Entrypoint
#                                ["/<name>"] like upstream's images. A sidecar without a binary
#                                in BINDIR (livenessprobe: its module is refused by the proxy
#                                here) is reported and skipped.
# Needs: busybox-static, catatonit, postgresql-15 (tests/e2e-k8s/runtime/lib.sh rt_install
# installs the first two; postgresql-15 is checked, not installed).
#
# Reproducible for the same host files: sorted entries, mtime 0, numeric owners. Idempotent and
# fast: an image whose inputs (this script, and size+mtime of every host file it copies) did
# not change since the last build is not rebuilt (key in OUTDIR/.<name>.key).
set -euo pipefail
umask 022
export LC_ALL=C

SELF=$(realpath -e "$0")
now_ms() { local t=${EPOCHREALTIME}; echo $((${t/./} / 1000)); }
T0=$(now_ms)
log() { echo "images: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

[[ $# -eq 1 || $# -eq 2 ]] || {
	echo "usage: $0 OUTDIR [BINDIR]" >&2
	exit 2
}
mkdir -p "$1"
OUT=$(realpath -e "$1")
BINDIR=${2:-}

BUSYBOX=/bin/busybox
CATATONIT=/usr/bin/catatonit
PGVER=15
PGBIN=/usr/lib/postgresql/${PGVER}/bin
PGLIB=/usr/lib/postgresql/${PGVER}/lib
PGSHARE=/usr/share/postgresql/${PGVER}
PG_TOOLS=(postgres initdb pg_ctl psql pg_isready pg_controldata)
PG_UID=999
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# is_static FILE: true if FILE is an ELF executable without a program interpreter.
is_static() {
	! LC_ALL=C ldd "$1" >/dev/null 2>&1
}
if ! [[ -x ${BUSYBOX} ]] || ! is_static "${BUSYBOX}"; then
	die "${BUSYBOX} is missing or not static: apt-get install busybox-static"
fi
if ! [[ -x ${CATATONIT} ]] || ! is_static "${CATATONIT}"; then
	die "${CATATONIT} is missing or not static: apt-get install catatonit"
fi

rm -rf "${OUT}"/.build.* # left by a killed run
WORK=$(mktemp -d "${OUT}/.build.XXXXXX")
trap 'rm -rf "${WORK}"' EXIT

# json_array WORD...: prints a JSON array of strings (words must not need escaping).
json_array() {
	local sep='' w out='['
	for w in "$@"; do
		[[ ${w} != *[\"\\]* ]] || die "cannot put ${w} in JSON"
		out+="${sep}\"${w}\""
		sep=','
	done
	echo "${out}]"
}

# input_key FILE...: a hash of this script and of the path, size and mtime of each FILE.
input_key() {
	{
		sha256sum "${SELF}"
		stat -L -c '%n %s %Y' "$@"
	} | sha256sum | cut -d' ' -f1
}

# is_fresh NAME KEY: true if OUT/NAME.tar was built from inputs with this KEY.
is_fresh() {
	[[ -f ${OUT}/$1.tar && -f ${OUT}/.$1.key && $(<"${OUT}/.$1.key") == "$2" ]]
}

# copy_host ROOT PATH...: copies each host PATH to ROOT/PATH (same path, symlinks followed,
# mode kept).
copy_host() {
	local root=$1 p
	shift
	for p in "$@"; do
		mkdir -p "${root}$(dirname "${p}")"
		cp -L --preserve=mode "${p}" "${root}${p}"
	done
}

# stage_base ROOT: directories every image but pause has, /etc files for root.
stage_base() {
	local r=$1
	mkdir -p "${r}"/{bin,etc,data,proc,sys,dev,root,var,run,usr/bin,usr/sbin,usr/local/bin}
	mkdir -m 1777 "${r}/tmp"
	chmod 0700 "${r}/root"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
		>"${r}/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"${r}/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"${r}/etc/nsswitch.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"${r}/etc/hosts"
}

# stage_busybox ROOT: /bin/busybox and a /bin symlink per applet.
stage_busybox() {
	local r=$1 a
	cp --preserve=mode "${BUSYBOX}" "${r}/bin/busybox"
	for a in $("${BUSYBOX}" --list); do
		[[ ${a} == busybox || -e ${r}/bin/${a} ]] || ln -s busybox "${r}/bin/${a}"
	done
}

# make_image NAME REF ROOT CONFIG_JSON [UID_PATH...]: writes OUT/NAME.tar, a docker archive
# whose single layer holds ROOT. CONFIG_JSON is the image's "config" object. UID_PATHs
# (relative to ROOT, not recursive) are owned by PG_UID:PG_UID in the layer, the rest by 0:0.
make_image() {
	local name=$1 ref=$2 root=$3 config=$4
	shift 4
	local d=${WORK}/${name}.archive
	local tar_opts=(--format=gnu --sort=name --mtime=@0 --numeric-owner --no-recursion)
	mkdir -p "${d}"
	(cd "${root}" && find . -mindepth 1 -printf '%P\n' | sort) >"${WORK}/${name}.list-all"
	printf '%s\n' "$@" | sed '/^$/d' | sort >"${WORK}/${name}.list-uid"
	comm -23 "${WORK}/${name}.list-all" "${WORK}/${name}.list-uid" >"${WORK}/${name}.list-root"
	tar -C "${root}" "${tar_opts[@]}" --owner=0 --group=0 -cf "${d}/layer.tar" \
		-T "${WORK}/${name}.list-root"
	if [[ -s ${WORK}/${name}.list-uid ]]; then
		tar -C "${root}" "${tar_opts[@]}" --owner="${PG_UID}" --group="${PG_UID}" \
			-rf "${d}/layer.tar" -T "${WORK}/${name}.list-uid"
	fi
	local diff_id cfg_id
	diff_id=$(sha256sum "${d}/layer.tar" | cut -d' ' -f1)
	mkdir "${d}/${diff_id}"
	mv "${d}/layer.tar" "${d}/${diff_id}/layer.tar"
	printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",%s,%s,%s}' \
		"\"config\":${config}" \
		"\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:${diff_id}\"]}" \
		"\"history\":[{\"created\":\"1970-01-01T00:00:00Z\",\"created_by\":\"tests/e2e-k8s/images/build.sh\"}]" \
		>"${d}/config.json"
	cfg_id=$(sha256sum "${d}/config.json" | cut -d' ' -f1)
	mv "${d}/config.json" "${d}/${cfg_id}.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
		"${cfg_id}" "${ref}" "${diff_id}" >"${d}/manifest.json"
	tar -C "${d}" --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner --no-recursion \
		-cf "${WORK}/${name}.tar" manifest.json "${cfg_id}.json" "${diff_id}" "${diff_id}/layer.tar"
	mv -f "${WORK}/${name}.tar" "${OUT}/${name}.tar"
}

# build NAME REF KEY STAGE_FUNCTION: builds OUT/NAME.tar unless it is fresh for KEY.
build() {
	local name=$1 ref=$2 key=$3 stage=$4 t
	t=$(now_ms)
	if is_fresh "${name}" "${key}"; then
		log "${ref}: up to date (${OUT}/${name}.tar)"
		return 0
	fi
	rm -f "${OUT}/.${name}.key"
	"${stage}" "${name}" "${ref}"
	echo "${key}" >"${OUT}/.${name}.key"
	log "${ref}: built ${OUT}/${name}.tar, $(du -h "${OUT}/${name}.tar" | cut -f1)," \
		"$(($(now_ms) - t)) ms"
}

build_pause() {
	local r=${WORK}/pause.root
	mkdir -p "${r}"
	cp --preserve=mode "${CATATONIT}" "${r}/pause"
	make_image "$1" "$2" "${r}" '{"Entrypoint":["/pause","-P"],"WorkingDir":"/"}'
}

build_busybox() {
	local r=${WORK}/busybox.root
	stage_base "${r}"
	stage_busybox "${r}"
	make_image "$1" "$2" "${r}" \
		"{\"Env\":[\"PATH=${DEFAULT_PATH}\"],\"Cmd\":[\"sh\"],\"WorkingDir\":\"/\"}"
}

# The helper put into the postgres image as /usr/local/bin/e2e-pg.
E2E_PG=$(
	cat <<'EOF'
#!/bin/sh
# e2e-pg: a small PostgreSQL workload for the rbdcsi e2e test (tests/e2e-k8s/images/build.sh).
# Runs as the postgres user (uid 999); DIR is a data directory, its parent must be writable.
#   e2e-pg init DIR            initdb DIR unless it already holds a cluster
#   e2e-pg start DIR           start the server in the background (unix socket only), wait;
#                              a postmaster.pid left by a killed container is removed first
#   e2e-pg stop DIR            fast shutdown, wait
#   e2e-pg serve DIR           init if needed, then run the server in the foreground (exec)
#   e2e-pg sql SQL             run SQL on the running server, print unaligned tuples
#   e2e-pg write TOKEN [N]     create table e2e if needed, insert N (default 1000) rows of TOKEN
#   e2e-pg check TOKEN [N]     exit 0 iff table e2e holds exactly N rows of TOKEN, intact
#   e2e-pg selftest DIR        init, start, write, stop, start, check, stop; prints "selftest OK"
# Server settings: listen_addresses='' (no TCP), socket in /var/run/postgresql, fsync on.
set -eu
die() {
	echo "e2e-pg: $*" >&2
	exit 1
}
[ "$(id -u)" != 0 ] || die "run me as the postgres user (uid 999), not root"
sock=/var/run/postgresql
pg_sql() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U postgres -d postgres -At -c "$1"
}
pg_init() {
	[ -f "$1/PG_VERSION" ] && return 0
	initdb -D "$1" -U postgres -A trust -E UTF8 --no-locale >"$1.initdb.log" 2>&1 ||
		{ cat "$1.initdb.log" >&2; die "initdb $1 failed"; }
	rm -f "$1.initdb.log"
}
# A server killed with its container leaves postmaster.pid; in a new container its pid may
# belong to one of our processes, and postgres would refuse to start.
pg_unlock() {
	pidof postgres >/dev/null || rm -f "$1/postmaster.pid"
}
pg_opts="-c listen_addresses= -c unix_socket_directories=$sock"
cmd=${1:-}
[ $# -ge 1 ] && shift
case "$cmd" in
write | check) case "${1:-}" in "" | *[!A-Za-z0-9_.-]*) die "TOKEN must match [A-Za-z0-9_.-]+" ;; esac ;;
esac
case "$cmd" in
init) pg_init "$1" ;;
start) pg_unlock "$1" && pg_ctl -D "$1" -l "$1/e2e-server.log" -w -t 120 -o "$pg_opts" start >/dev/null ||
	{ cat "$1/e2e-server.log" >&2; die "start failed"; } ;;
stop) pg_ctl -D "$1" -w -t 120 -m fast stop >/dev/null ;;
serve)
	pg_init "$1"
	pg_unlock "$1"
	# shellcheck disable=SC2086
	exec postgres -D "$1" $pg_opts
	;;
sql) pg_sql "$1" ;;
write)
	n=${2:-1000}
	pg_sql "CREATE TABLE IF NOT EXISTS e2e (id bigserial PRIMARY KEY, tok text NOT NULL, h text NOT NULL);
		INSERT INTO e2e (tok, h) SELECT '$1', md5('$1' || g) FROM generate_series(1, $n) AS g;
		CHECKPOINT;"
	;;
check)
	n=${2:-1000}
	got=$(pg_sql "SELECT count(*) FROM e2e WHERE tok = '$1'")
	bad=$(pg_sql "SELECT count(*) FROM (SELECT h, row_number() OVER (ORDER BY id) AS i FROM e2e
		WHERE tok = '$1') AS t WHERE h <> md5('$1' || i)")
	[ "$got" = "$n" ] && [ "$bad" = 0 ] || die "check $1: $got rows (want $n), $bad bad"
	echo "e2e-pg: check $1: $n rows OK"
	;;
selftest)
	pg_init "$1"
	"$0" start "$1"
	"$0" write selftest 100
	"$0" stop "$1"
	"$0" start "$1"
	"$0" check selftest 100
	"$0" stop "$1"
	echo "e2e-pg: selftest OK ($(postgres --version))"
	;;
*) die "usage: e2e-pg init|start|stop|serve DIR | sql SQL | write|check TOKEN [N] | selftest DIR" ;;
esac
EOF
)

# pg_libs: the shared libraries (ldd paths) of the postgres tools and PG_MODULES.
pg_libs() {
	local f
	for f in "${PG_TOOLS[@]/#/${PGBIN}/}" "${PG_MODULES[@]}"; do
		LC_ALL=C ldd "${f}" | awk -v f="${f}" '
			/not found/ { print "MISSING " $1 " for " f; next }
			$2 == "=>" && $3 ~ /^\// { print $3; next }
			$1 ~ /^\// { print $1 }'
	done | sort -u
}


build_postgres() {
	local r=${WORK}/postgres.root p
	stage_base "${r}"
	stage_busybox "${r}"
	mkdir -p "${r}${PGBIN}" "${r}${PGLIB}" "${r}/usr/share/postgresql" "${r}/usr/share/zoneinfo"
	for p in "${PG_TOOLS[@]}"; do
		cp --preserve=mode "${PGBIN}/${p}" "${r}${PGBIN}/${p}"
	done
	ln -s postgres "${r}${PGBIN}/postmaster"
	copy_host "${r}" "${PG_MODULES[@]}"
	copy_host "${r}" "${PG_LIBS[@]}"
	cp -R --preserve=mode "${PGSHARE}" "${r}/usr/share/postgresql/"
	rm -rf "${r}${PGSHARE}/man"
	cp -R --preserve=mode /usr/share/zoneinfo/. "${r}/usr/share/zoneinfo/"
	echo "Etc/UTC" >"${r}/etc/timezone"
	ln -s /usr/share/zoneinfo/Etc/UTC "${r}/etc/localtime"
	echo "postgres:x:${PG_UID}:${PG_UID}:PostgreSQL:/var/lib/postgresql:/bin/sh" >>"${r}/etc/passwd"
	echo "postgres:x:${PG_UID}:" >>"${r}/etc/group"
	mkdir -p "${r}/var/lib/postgresql" "${r}/var/run/postgresql"
	chmod 0755 "${r}/var/lib/postgresql"
	chmod 2775 "${r}/var/run/postgresql"
	printf '%s\n' "${E2E_PG}" >"${r}/usr/local/bin/e2e-pg"
	chmod 0755 "${r}/usr/local/bin/e2e-pg"
	make_image "$1" "$2" "${r}" "$(printf '{"User":"%s","Env":%s,"Cmd":%s,"WorkingDir":"%s"}' \
		"${PG_UID}:${PG_UID}" \
		"$(json_array "PATH=${PGBIN}:${DEFAULT_PATH}" PGHOST=/var/run/postgresql PGUSER=postgres TZ=UTC)" \
		"$(json_array e2e-pg selftest /tmp/pgdata)" /var/lib/postgresql)" \
		var/lib/postgresql var/run/postgresql
}

build pause localhost/pause:e2e "$(input_key "${CATATONIT}")" build_pause
build busybox localhost/busybox:e2e "$(input_key "${BUSYBOX}")" build_busybox

[[ -x ${PGBIN}/postgres ]] || die "${PGBIN}/postgres is missing: apt-get install postgresql-${PGVER}"
# The server's loadable modules, without LLVM JIT (postgres runs without it).
mapfile -t PG_MODULES < <(find "${PGLIB}" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' | sort)
mapfile -t PG_LIBS < <(pg_libs)
mapfile -t PG_DATA < <(find "${PGSHARE}" /usr/share/zoneinfo -type f | sort)
if printf '%s\n' "${PG_LIBS[@]}" | grep '^MISSING' >&2; then
	die "shared libraries of PostgreSQL are missing on this host"
fi
build postgres localhost/postgres:e2e \
	"$(input_key "${BUSYBOX}" "${PG_TOOLS[@]/#/${PGBIN}/}" "${PG_MODULES[@]}" "${PG_LIBS[@]}" \
		"${PG_DATA[@]}")" build_postgres

# --- CSI sidecars, from the e2e's Go binaries ---------------------------------------------
SIDECAR_BIN=
build_sidecar() {
	local r=${WORK}/$1.root n
	n=$(basename "${SIDECAR_BIN}")
	stage_base "${r}"
	cp --preserve=mode "${SIDECAR_BIN}" "${r}/${n}"
	make_image "$1" "$2" "${r}" "$(printf '{"Entrypoint":%s,"Env":%s,"WorkingDir":"/"}' \
		"$(json_array "/${n}")" "$(json_array "PATH=${DEFAULT_PATH}")")"
}
SIDECARS_BUILT=()
if [[ -n ${BINDIR} ]]; then
	# Every sidecar reference of the shipped manifests, as written there.
	mapfile -t SIDECAR_REFS < <(sed -n 's|^\s*image:\s*\(registry\.k8s\.io/sig-storage/[^[:space:]]*\)\s*$|\1|p' \
		"${SELF%/tests/e2e-k8s/images/build.sh}"/deploy/kubernetes/*.yaml | sort -u)
	[[ ${#SIDECAR_REFS[@]} -gt 0 ]] || die "no sidecar image in deploy/kubernetes/*.yaml"
	for ref in "${SIDECAR_REFS[@]}"; do
		n=${ref##*/}
		n=${n%%:*}
		case ${n} in
		csi-node-driver-registrar) bin=${BINDIR}/registrar ;;
		*) bin=${BINDIR}/${n} ;;
		esac
		if [[ ! -x ${bin} ]]; then
			log "${ref}: SKIPPED: no ${bin} (not built by tests/e2e-k8s/build.sh)"
			continue
		fi
		is_static "${bin}" || die "${bin} is not a static binary"
		# The image runs the binary as /<its upstream name>.
		mkdir -p "${WORK}/bin"
		cp --preserve=mode "${bin}" "${WORK}/bin/${n}"
		SIDECAR_BIN=${WORK}/bin/${n}
		build "sidecar-${n}" "${ref}" "$(input_key "${bin}")-${ref}" build_sidecar
		SIDECARS_BUILT+=("sidecar-${n}.tar")
	done
	printf '%s\n' "${SIDECARS_BUILT[@]}" >"${OUT}/sidecars.list"
fi

log "done in $(($(now_ms) - T0)) ms: $(cd "${OUT}" && du -h pause.tar busybox.tar postgres.tar | awk '{printf "%s=%s ", $2, $1}')"
