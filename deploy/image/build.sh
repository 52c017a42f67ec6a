#!/usr/bin/env bash
# make image: the rbdcsi container image, built on this machine from Debian packages, with no
# container engine, no registry and nothing pulled. As root (mmdebstrap --mode=root, chroot).
#
#   deploy/image/build.sh              build (or reuse) and print the archive's path on stdout
#
# Steps (each cached under $RBDCSI_IMAGE_CACHE, default /var/cache/rbdcsi-image):
#   1. build root: `mmdebstrap --variant=minbase trixie` + build-packages.list, a directory
#      (key: this recipe, the suite, the mirrors and the package list; ~50 s cold);
#   2. rbdcsi: `make build/rbdcsi` inside the build root (chroot), so the binary is compiled and
#      linked against trixie's headers and libraries, the ones the image carries. Cached by a
#      hash of the source tree (tracked + untracked, not ignored files) and the build root;
#   3. runtime root: `mmdebstrap --variant=minbase trixie` + runtime-packages.list, with the
#      dpkg path filters of Debian's -slim images (slim.dpkg.cfg; slim.py applies them to the
#      essential packages too, as debuerreotype does), kept as a directory and as the image's
#      base layer tarball (~1 min cold);
#   4. check-root.sh inside runtime root + binary (an overlay mount, chroot): every library the
#      binary links or loads resolves, `rbdcsi --help` runs, the node plugin's tools are there;
#   5. the archive build/image/rbdcsi-<tag>.oci.tar (deploy/image/oci.py): two layers (base,
#      /usr/bin/rbdcsi), User 65534:65534, Entrypoint /usr/bin/rbdcsi. It loads with
#      `podman load -i`, `docker load -i` and `ctr -n k8s.io images import`.
# Also written: build/image/rbdcsi.oci.tar (symlink to the newest), rbdcsi.ref (the image
# reference), rbdcsi.packages (dpkg-query of the image: name version), rbdcsi.config.json.
#
# deploy/Containerfile builds the same image with podman/docker from the same package lists
# (tests/image/check.sh compares them). Environment:
#   RBDCSI_IMAGE_NAME     repository, default localhost/rbdcsi
#   RBDCSI_IMAGE_TAG      tag, default: `git describe --tags --always --dirty` (made tag-safe)
#   RBDCSI_IMAGE_MIRROR   Debian mirror, default http://deb.debian.org/debian
#   RBDCSI_IMAGE_SECURITY security mirror, default http://deb.debian.org/debian-security
#   RBDCSI_IMAGE_REFRESH  =1: bootstrap the roots again (new package versions, security fixes)
set -euo pipefail
umask 022
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

SUITE=trixie
MIRROR=${RBDCSI_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY=${RBDCSI_IMAGE_SECURITY:-http://deb.debian.org/debian-security}
CACHE=${RBDCSI_IMAGE_CACHE:-/var/cache/rbdcsi-image}
OUT=$ROOT/build/image
NAME=${RBDCSI_IMAGE_NAME:-localhost/rbdcsi}
# Bump when the way of building changes (options, layout, the checks below).
RECIPE=1

now_ms() { local t=${EPOCHREALTIME}; echo $((${t/./} / 1000)); }
T0=$(now_ms)
log() { echo "image: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
[[ ${EUID} -eq 0 ]] || die "needs root (mmdebstrap --mode=root, chroot, mount)"
for t in mmdebstrap unshare /usr/bin/python3; do
	command -v "$t" >/dev/null || die "$t is missing (tests/deps.sh installs mmdebstrap)"
done

# packages FILE: the package names of a list file (comments and blank lines dropped). The
# Containerfile reads the lists with the same sed expression.
packages() {
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1"
}

# The tag: git describe, made valid for a Docker/OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
VERSION=${RBDCSI_IMAGE_TAG:-$(git describe --tags --always --dirty 2>/dev/null || echo 0.1.0)}
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/^[.-]*//' | cut -c1-128)
[[ -n $TAG ]] || die "no usable tag from '$VERSION'"
REF=$NAME:$TAG

SOURCES=(
	"deb $MIRROR $SUITE main"
	"deb $MIRROR $SUITE-updates main"
	"deb $SECURITY $SUITE-security main"
)
mkdir -p "$CACHE" "$OUT"
# One build at a time per cache (other worktrees, the e2e): roots, binary and layer are shared.
exec 8>"$CACHE/.lock"
if ! flock -n 8; then
	log "another build holds $CACHE/.lock; waiting for it"
	flock 8
fi

# key WORDS...: a short hash of the recipe, the sources and WORDS (file contents for files).
key() {
	local w
	{
		echo "recipe $RECIPE $SUITE" "${SOURCES[@]}"
		for w in "$@"; do
			if [[ -f $w ]]; then sha256sum <"$w"; else echo "$w"; fi
		done
	} | sha256sum | cut -c1-16
}

# bootstrap DIR LIST [MMDEBSTRAP_OPTION...]: a minbase trixie root with LIST's packages in DIR,
# unless DIR/.complete exists. Other roots of the same kind (older keys) are removed.
bootstrap() {
	local dir=$1 list=$2 t
	shift 2
	if [[ -f $dir/.complete && ${RBDCSI_IMAGE_REFRESH:-0} != 1 ]]; then
		log "cached: $dir"
		return 0
	fi
	t=$(now_ms)
	rm -rf "$dir" "$dir.partial"
	log "mmdebstrap $SUITE + $(basename "$list") -> $dir ..."
	# --skip=output/dev: no device nodes in the root (a container gets its own /dev).
	nice -n 10 mmdebstrap --quiet --mode=root --variant=minbase --format=directory \
		--aptopt='Acquire::Retries "3"' --skip=output/dev \
		--include="$(packages "$list" | paste -sd, -)" "$@" \
		"$SUITE" "$dir.partial" "${SOURCES[@]}" >&2
	# Host files mmdebstrap leaves for name resolution; the runtime provides its own.
	rm -f "$dir.partial/etc/resolv.conf" "$dir.partial/etc/hostname"
	# The dpkg path filters also for the essential packages, unpacked before dpkg read them.
	if [[ -n ${SLIM:-} ]]; then
		log "slim: $(/usr/bin/python3 "$HERE/slim.py" "$SLIM" "$dir.partial") files removed"
	fi
	touch "$dir.partial/.complete"
	mv "$dir.partial" "$dir"
	local kind=${dir##*/}
	kind=${kind%-*}
	for old in "$CACHE/$kind"-*; do
		[[ $old == "$dir" || $old == "$dir".* ]] || rm -rf "$old"
	done
	log "bootstrapped in $((($(now_ms) - t) / 1000)) s: $(du -sh "$dir" | cut -f1)"
}

# in_root DIR CMD...: runs CMD in a chroot of DIR with /dev and /proc, in a private mount
# namespace (nothing stays mounted).
in_root() {
	local dir=$1
	shift
	unshare -m --propagation private -- /bin/sh -c \
		'd=$1; shift; mount --rbind /dev "$d/dev" && mount -t proc proc "$d/proc" && exec chroot "$d" "$@"' \
		in_root "$dir" "$@"
}

# --- 1. build root -----------------------------------------------------------------------
BUILD_KEY=$(key "$HERE/build-packages.list")
BROOT=$CACHE/buildroot-$BUILD_KEY
bootstrap "$BROOT" "$HERE/build-packages.list"

# --- 2. rbdcsi, compiled against trixie -----------------------------------------------------
[[ -f build/proto/csi.proto ]] || make --no-print-directory build/proto/csi.proto >&2
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The tree as `git status` sees it (tracked files that exist, untracked not ignored), as a
# reproducible tar: its hash keys the compiled binary.
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [[ -f $f || -L $f ]] && printf '%s\0' "$f"; done >"$WORK/files"
tar --null -T "$WORK/files" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
	-cf "$WORK/src.tar" build/proto/csi.proto
SRC_KEY=$( (
	sha256sum <"$WORK/src.tar"
	echo "$BUILD_KEY $TAG"
) | sha256sum | cut -c1-16)
BIN=$CACHE/rbdcsi-$SRC_KEY
if [[ -f $BIN ]]; then
	log "cached: $BIN"
else
	t=$(now_ms)
	log "make build/rbdcsi VERSION=$VERSION in the $SUITE build root ..."
	rm -rf "$BROOT/src"
	mkdir -p "$BROOT/src"
	tar -C "$BROOT/src" -xf "$WORK/src.tar"
	in_root "$BROOT" nice -n 10 make -C /src --no-print-directory -j"$(nproc)" build/rbdcsi \
		VERSION="$VERSION" >"$WORK/make.log" 2>&1 || {
		cat "$WORK/make.log" >&2
		die "make failed in the build root"
	}
	cp "$BROOT/src/build/rbdcsi" "$BIN.partial"
	rm -rf "$BROOT/src"
	mv "$BIN.partial" "$BIN"
	for old in "$CACHE"/rbdcsi-*; do [[ $old == "$BIN" ]] || rm -f "$old"; done
	log "compiled in $((($(now_ms) - t) / 1000)) s"
fi

# --- 3. runtime root and its layer --------------------------------------------------------
RUN_KEY=$(key "$HERE/runtime-packages.list" "$HERE/slim.dpkg.cfg" "$HERE/slim.py")
RROOT=$CACHE/rootfs-$RUN_KEY
SLIM=$HERE/slim.dpkg.cfg bootstrap "$RROOT" "$HERE/runtime-packages.list" \
	--dpkgopt="$HERE/slim.dpkg.cfg"
# The layer tarball: sorted, numeric owners, mtime clamped, no .complete stamp, /dev empty.
tar_layer() {
	tar -C "$1" --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		--sort=name --numeric-owner --mtime=@0 --clamp-mtime --xattrs --exclude=./.complete \
		-cf "$2" .
}
BASE_LAYER=$RROOT.layer.tar
if [[ ! -f $BASE_LAYER || $RROOT/.complete -nt $BASE_LAYER ]]; then
	tar_layer "$RROOT" "$BASE_LAYER.partial"
	mv "$BASE_LAYER.partial" "$BASE_LAYER"
fi
in_root "$RROOT" dpkg-query -W -f='${Package} ${Version}\n' | sort >"$WORK/packages"

# The application layer: /usr/bin/rbdcsi only.
mkdir -p "$WORK/app/usr/bin"
install -m 0755 "$BIN" "$WORK/app/usr/bin/rbdcsi"
APP_LAYER=$WORK/app.tar
tar -C "$WORK/app" --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	--sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --no-recursion \
	-cf "$APP_LAYER" ./usr ./usr/bin ./usr/bin/rbdcsi

# --- 4. checks inside the image's root (check-root.sh, as the Containerfile runs it) --------
mkdir -p "$WORK/ovl/upper" "$WORK/ovl/work" "$WORK/ovl/merged"
cp -a "$WORK/app/." "$WORK/ovl/upper/"
install -D -m 0755 "$HERE/check-root.sh" "$WORK/ovl/upper/tmp/check-root.sh"
unshare -m --propagation private -- /bin/sh -c '
	m=$1/ovl/merged
	mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/ovl/upper,workdir=$1/ovl/work" "$m" &&
	mount --rbind /dev "$m/dev" && mount -t proc proc "$m/proc" &&
	exec chroot "$m" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh /tmp/check-root.sh' \
	check "$WORK" "$RROOT" >"$WORK/check.log" 2>&1 || {
	cat "$WORK/check.log" >&2
	die "the image's root fails its checks"
}

# --- 5. the archive -------------------------------------------------------------------------
cat >"$WORK/config.json" <<EOF
{
  "User": "65534:65534",
  "Entrypoint": ["/usr/bin/rbdcsi"],
  "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
  "WorkingDir": "/"
}
EOF
ARCHIVE=$OUT/rbdcsi-$TAG.oci.tar
CREATED=$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || echo 0)" +%Y-%m-%dT%H:%M:%SZ)
digest=$(/usr/bin/python3 "$HERE/oci.py" --out "$ARCHIVE" --ref "$REF" --config "$WORK/config.json" \
	--created "$CREATED" \
	--label "org.opencontainers.image.version=$VERSION" \
	--label "org.opencontainers.image.title=rbdcsi" \
	--label "org.opencontainers.image.base.name=debian:$SUITE-slim" \
	--label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	"$BASE_LAYER" "$APP_LAYER")
for old in "$OUT"/rbdcsi-*.oci.tar; do [[ $old == "$ARCHIVE" ]] || rm -f "$old"; done
ln -sfn "$(basename "$ARCHIVE")" "$OUT/rbdcsi.oci.tar"
echo "$REF" >"$OUT/rbdcsi.ref"
cp "$WORK/packages" "$OUT/rbdcsi.packages"
cp "$WORK/config.json" "$OUT/rbdcsi.config.json"
log "$REF ($digest): $ARCHIVE, $(du -h "$ARCHIVE" | cut -f1), $(wc -l <"$OUT/rbdcsi.packages")" \
	"packages, $((($(now_ms) - T0) / 1000)) s"
echo "$ARCHIVE"
