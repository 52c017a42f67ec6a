# shellcheck shell=bash disable=SC2034
# Sourced by scripts that need a Go tool at a pinned version:
#   . tests/gotool.sh; KUSTOMIZE=$(tool kustomize v5.8.2 sigs.k8s.io/kustomize/kustomize/v5)
# Builds with `go install` from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/rbdcsi/tools/<name>-<version>/ once; later calls reuse it.
KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
KUSTOMIZE_VERSION=v5.8.2 # v5.8.3 needs Go 1.27
HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2
TOOLS=${TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rbdcsi/tools}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# tool NAME VERSION PKG: print the path of the cached binary, building it if needed.
# The build goes to a temp dir first and is moved into place, so a killed build leaves no
# half-written binary in the cache.
tool() {
	local name=$1 version=$2 pkg=$3
	local dir=$TOOLS/$name-$version bin=$TOOLS/$name-$version/$name
	if [ -x "$bin" ]; then
		echo "  TOOL    $name $version: cached ($bin)" >&2
		echo "$bin"
		return 0
	fi
	if ! command -v go >/dev/null; then
		echo "  TOOL    $name $version: go not found; cannot build it" >&2
		return 1
	fi
	mkdir -p "$dir"
	local tmp start
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	start=$(now)
	echo "  TOOL    $name $version: building (go install $pkg@$version)" >&2
	if ! GOBIN=$tmp GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		go install -trimpath -ldflags='-s -w' "$pkg@$version" >"$tmp/build.log" 2>&1; then
		sed 's/^/          /' "$tmp/build.log" >&2
		rm -rf "$tmp"
		return 1
	fi
	mv -f "$tmp/$name" "$bin"
	rm -rf "$tmp"
	echo "  TOOL    $name $version: built in $(elapsed "$start") s" >&2
	echo "$bin"
}

