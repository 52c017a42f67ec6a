#!/usr/bin/env bash
# Builds (or finds cached) every Go binary the Kubernetes e2e needs, from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
#     (tests/e2e-k8s/tools: a wrapper module, because k8s.io/kubernetes cannot be `go install`ed),
#   registrar (tests/e2e-k8s/tools/registrar: node-driver-registrar's job; its module is refused
#     by the proxy here),
#   csi-provisioner, csi-attacher, csi-resizer, csi-snapshotter, snapshot-controller
#     (built in a copy of their module directory, so upstream's replaces and go.sum hold).
#
#   tests/e2e-k8s/build.sh          prints the bin directory on stdout (progress on stderr)
#
# The binaries go to $RBDCSI_E2E_CACHE/bin-<key> (default /var/cache/rbdcsi-e2e), where <key>
# hashes the Go version, the wrapper module and every pinned version below; a directory with a
# .complete stamp is reused as it is, so only a new machine (or a version bump) builds.
set -euo pipefail
cd "$(dirname "$0")"

K8S_VERSION=v1.36.1
# module@version:command... for the sidecars, the versions deploy/ names.
SIDECARS=(
	"github.com/kubernetes-csi/external-provisioner/v6@v6.3.0:csi-provisioner"
	"github.com/kubernetes-csi/external-attacher/v4@v4.12.0:csi-attacher"
	"github.com/kubernetes-csi/external-resizer/v2@v2.2.0:csi-resizer"
	"github.com/kubernetes-csi/external-snapshotter/v8@v8.6.0:csi-snapshotter,snapshot-controller"
)
SNAPSHOT_CLIENT=github.com/kubernetes-csi/external-snapshotter/client/v8@v8.6.0

CACHE=${RBDCSI_E2E_CACHE:-/var/cache/rbdcsi-e2e}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The build cache of these ~3 GB of objects stays with the binaries, not in the user's cache.
export GOCACHE=${RBDCSI_E2E_GOCACHE:-$CACHE/gocache}

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }
say() { echo "build: $*" >&2; }

# Bump RECIPE when the way of building changes (flags, layout of the bin directory).
RECIPE=1
key=$( (
	go env GOVERSION
	echo "$RECIPE" "$K8S_VERSION" "${SIDECARS[@]}" "$SNAPSHOT_CLIENT"
	cat tools/go.mod tools/go.sum tools/etcd/main.go tools/registrar/main.go
) | sha256sum | cut -c1-16)
BIN=$CACHE/bin-$key
if [[ -f $BIN/.complete ]]; then
	say "cached: $BIN"
	echo "$BIN"
	exit 0
fi

mkdir -p "$CACHE"
TMP=$BIN.partial
rm -rf "$TMP"
mkdir -p "$TMP"
T0=$(now_us)

# Kubernetes, etcd and the registrar: one `go build`, so shared packages compile once.
t=$(now_us)
say "kubernetes $K8S_VERSION, etcd, registrar ..."
ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ver+=" -X k8s.io/component-base/version.gitMajor=1"
ver+=" -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
(cd tools && go build -trimpath -ldflags "-s -w $ver" -o "$TMP/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
	k8s.io/kubernetes/cmd/kubectl ./etcd ./registrar)
say "kubernetes: $((($(now_us) - t) / 1000000)) s"

# Prints the directory of module@version in the module cache, downloading it if needed.
moddir() {
	go mod download -json "$1" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p'
}

for entry in "${SIDECARS[@]}"; do
	t=$(now_us)
	mv=${entry%%:*}
	cmds=${entry#*:}
	version=${mv#*@}
	src=$CACHE/src/$(basename "${mv%@*}")-$version
	say "${cmds//,/ } $version ..."
	rm -rf "$src"
	mkdir -p "$src"
	cp -r "$(moddir "$mv")/." "$src"
	if [[ $mv == *external-snapshotter* ]]; then
		# Its go.mod replaces the client module with ./client, a nested module that the
		# module zip leaves out: put the same version there.
		mkdir -p "$src/client"
		cp -r "$(moddir "$SNAPSHOT_CLIENT")/." "$src/client"
	fi
	chmod -R u+w "$src"
	pkgs=()
	for c in ${cmds//,/ }; do pkgs+=("./cmd/$c"); done
	(cd "$src" && go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$TMP/" \
		"${pkgs[@]}")
	rm -rf "$src"
	say "${cmds//,/ }: $((($(now_us) - t) / 1000000)) s"
done

# The snapshot CRDs come with the client module of the same version.
mkdir -p "$TMP/crd"
cp "$(moddir "$SNAPSHOT_CLIENT")"/config/crd/snapshot.storage.k8s.io_*.yaml "$TMP/crd/"
cp "$(moddir "$SNAPSHOT_CLIENT")"/config/crd/groupsnapshot.storage.k8s.io_*.yaml "$TMP/crd/"
chmod u+w "$TMP"/crd/*

touch "$TMP/.complete"
rm -rf "$BIN"
mv "$TMP" "$BIN"
# Binaries of other versions are of no more use (about 750 MB each).
for old in "$CACHE"/bin-*; do
	[[ $old == "$BIN" ]] || rm -rf "$old"
done
say "all built in $((($(now_us) - T0) / 1000000)) s: $BIN"
echo "$BIN"
