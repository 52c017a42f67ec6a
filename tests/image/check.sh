#!/usr/bin/env bash
# The image stage of `make check`: builds the image with `make image` (deploy/image/build.sh,
# cached: a warm run only re-tars the small /usr/bin/rbdcsi layer) and checks it. As root.
#
#   tests/image/check.sh
#
# Checks, one PASS/FAIL line each, "N passed, M failed" at the end:
#   content.py          the archive against deploy/Containerfile and the package lists (same
#                       base, packages, dpkg filters, User/Entrypoint/Env; nothing else
#                       installed; every linked library shipped by a listed package)
#   podman-load         `podman load` into a throwaway store names it <ref>, User 65534:65534
#   ctr-import          `ctr images import` into a throwaway containerd lists <ref>
#   docker-load         `docker load` into a throwaway dockerd (no iptables, no bridge)
#   controller-nonroot  rbdcsi --mode=controller from the archive's layers, as 65534:65534,
#                       read-only root, writable only /csi and /tmp (the Deployment's
#                       securityContext): serves its socket, exits 0 on SIGTERM
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=/usr/bin/python3

if [[ ${EUID} -ne 0 ]]; then
	echo "image: SKIPPED: needs root (mmdebstrap --mode=root, chroot, mounts)" >&2
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi
tests/deps.sh mmdebstrap podman containerd runc docker.io >&2

# shellcheck source=tests/checklib.sh
. "$ROOT/tests/checklib.sh"

ARCHIVE=$(deploy/image/build.sh)
REF=$(cat build/image/rbdcsi.ref)
WORK=$(mktemp -d /tmp/rbdcsi-image-check.XXXXXX)
PIDS=()
DOCKERD_LEFT=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	grep -F " $WORK/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l || true
	rm -rf "$WORK"
	for p in "${DOCKERD_LEFT[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT

out=$("$PYTHON" tests/image/content.py "$ARCHIVE" deploy/Containerfile \
	deploy/image/build-packages.list deploy/image/runtime-packages.list \
	deploy/image/slim.dpkg.cfg deploy/image/build.sh) || true
echo "$out"
passed=$((passed + $(grep -c '^PASS' <<<"$out" || true)))
failed=$((failed + $(grep -c '^FAIL' <<<"$out" || true)))

# waitfor SECONDS CMD...: polls CMD every 0.1 s.
waitfor() {
	local n=$(($1 * 10))
	shift
	while ((n-- > 0)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# --- podman load ------------------------------------------------------------------------
P=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --tmpdir "$WORK/podman/tmp"
	--events-backend none --storage-driver vfs)
if "${P[@]}" load -i "$ARCHIVE" >"$WORK/podman.log" 2>&1 &&
	[[ $("${P[@]}" image inspect "$REF" --format '{{.Config.User}}' 2>>"$WORK/podman.log") == 65534:65534 ]]; then
	pass "podman-load: $REF"
else
	fail "podman-load: $(tail -3 "$WORK/podman.log")"
fi
"${P[@]}" rmi -a -f >/dev/null 2>&1 || true

# --- ctr import -------------------------------------------------------------------------
C=$WORK/containerd
mkdir -p "$C"
cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$C/c.sock"
[ttrpc]
  address = "$C/c.sock.ttrpc"
EOF
containerd --config "$C/config.toml" >"$C/log" 2>&1 &
PIDS+=($!)
if waitfor 20 ctr -a "$C/c.sock" version &&
	ctr -a "$C/c.sock" -n check images import "$ARCHIVE" >>"$C/log" 2>&1 &&
	ctr -a "$C/c.sock" -n check images ls -q | grep -qxF "$REF"; then
	pass "ctr-import: $REF"
else
	fail "ctr-import: $(tail -3 "$C/log")"
fi

# --- docker load ------------------------------------------------------------------------
D=$WORK/docker
mkdir -p "$D"
# dockerd 20.10 always writes these two, whatever its flags: removed afterwards if it made them.
for f in /etc/docker/key.json /run/docker; do
	[[ -e $f ]] || DOCKERD_LEFT+=("$f")
done
dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/pid" -H "unix://$D/d.sock" \
	--iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
	>"$D/log" 2>&1 &
PIDS+=($!)
DK=(docker -H "unix://$D/d.sock")
if waitfor 60 "${DK[@]}" version &&
	"${DK[@]}" load -i "$ARCHIVE" >>"$D/log" 2>&1 &&
	[[ $("${DK[@]}" image inspect "$REF" --format '{{.Config.User}}' 2>>"$D/log") == 65534:65534 ]]; then
	pass "docker-load: $REF"
else
	fail "docker-load: $(tail -3 "$D/log")"
fi

# --- the controller as the Deployment runs it ---------------------------------------------
R=$WORK/rootfs
mkdir -p "$R"
"$PYTHON" - "$ARCHIVE" "$R" <<'EOF'
import io, json, sys, tarfile
archive, dest = sys.argv[1:3]
with tarfile.open(archive) as t:
    m = json.load(t.extractfile("manifest.json"))[0]
    for layer in m["Layers"]:
        with tarfile.open(fileobj=io.BytesIO(t.extractfile(layer).read())) as lt:
            lt.extractall(dest, numeric_owner=True, filter="fully_trusted") \
                if hasattr(tarfile, "data_filter") else lt.extractall(dest, numeric_owner=True)
EOF
mkdir -p "$WORK/csi" "$WORK/conf"
echo '[{"clusterID":"c1","monitors":["127.0.0.1:1"]}]' >"$WORK/conf/config.json"
cat >"$WORK/controller.sh" <<'EOF'
set -e
r=$1 w=$2
mount --bind "$r" "$r"
mount --rbind /dev "$r/dev"
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mkdir -p "$r/csi" "$r/etc/rbdcsi" 2>/dev/null || true
mount --bind "$w/csi" "$r/csi"
mount --bind "$w/conf" "$r/etc/rbdcsi"
mount -o remount,bind,ro "$r"
exec chroot --userspec=65534:65534 --groups= "$r" /usr/bin/rbdcsi --mode=controller \
	--endpoint=unix:///csi/csi.sock --config=/etc/rbdcsi/config.json --grace-period=1
EOF
chmod 0777 "$WORK/csi"
mkdir -p "$R/csi" "$R/etc/rbdcsi"
unshare -m --propagation private -- /bin/sh "$WORK/controller.sh" "$R" "$WORK" \
	>"$WORK/controller.log" 2>&1 &
cpid=$!
PIDS+=("$cpid")
if waitfor 20 test -S "$WORK/csi/csi.sock" &&
	[[ $(stat -c %u "$WORK/csi/csi.sock") == 65534 ]] && kill -0 "$cpid" &&
	kill -TERM "$(pgrep -P "$cpid" -x rbdcsi || echo "$cpid")" 2>/dev/null &&
	wait "$cpid"; then
	pass "controller-nonroot: serves /csi/csi.sock as 65534 on a read-only root"
else
	fail "controller-nonroot: $(tail -5 "$WORK/controller.log")"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
