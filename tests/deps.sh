#!/usr/bin/env bash
# Install the Debian packages rbdcsi needs to build and test, if any are missing.
#
#   tests/deps.sh [PACKAGE...]   (as root, or as a user that may run sudo)
#
# Extra PACKAGEs are added to the list (tests/e2e-k8s/run.sh passes the container runtime).
#
# A warm machine costs one dpkg-query call (well under a second). When something is missing:
# one `apt-get update`, then `apt-get install --no-install-recommends` of the missing packages
# only. Prints one summary line. Extend the package list below; nothing else needs to change.
set -euo pipefail

PACKAGES=(
	# build
	build-essential pkg-config curl unzip git ca-certificates
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
	librados-dev librbd-dev libblkid-dev libmount-dev libudev-dev libjson-c-dev
	libcmocka-dev libmicrohttpd-dev libssl-dev libcurl4-openssl-dev
	libcryptsetup-dev
	# a throwaway Ceph and the node data path (tests/ceph/)
	ceph-mon ceph-osd ceph-common rbd-fuse
	e2fsprogs xfsprogs util-linux fdisk uuid-runtime
	# lint and analysis
	clang-format cppcheck valgrind
	# make fuzz: libFuzzer (clang -fsanitize=fuzzer)
	clang libclang-rt-dev
	# test clients and services
	python3-grpcio python3-grpc-tools python3-h2 python3-protobuf python3-yaml postgresql
)

export DEBIAN_FRONTEND=noninteractive

now_us() { local t=${EPOCHREALTIME}; echo "${t/./}"; }

secs_since() {
	local d=$(($(now_us) - $1))
	printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}

# Runs "$@" as root: directly when we are root, else through sudo.
as_root() {
	if [[ ${EUID} -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo env DEBIAN_FRONTEND=noninteractive "$@"
	else
		echo "deps: need root (or sudo) to run: $*" >&2
		return 1
	fi
}

# Prints the packages of "$@" that are not fully installed, one per line. One dpkg-query
# call for all of them; a package dpkg has never heard of is absent from its output.
missing_packages() {
	local -A ok=()
	local name status
	while IFS=$'\t' read -r name status; do
		[[ ${status} == "install ok installed" ]] && ok[${name%%:*}]=1
	done < <(dpkg-query -W -f='${Package}\t${Status}\n' "$@" 2>/dev/null || true)
	for name in "$@"; do
		[[ -n ${ok[${name}]:-} ]] || echo "${name}"
	done
}

apt_install() {
	# Wait for a concurrent apt/dpkg instead of failing on its lock.
	as_root apt-get -o DPkg::Lock::Timeout=300 -q -y install --no-install-recommends "$@"
}

main() {
	local t0 missing=() installed=() go_note=""
	t0=$(now_us)

	PACKAGES+=("$@")
	mapfile -t missing < <(missing_packages "${PACKAGES[@]}")

	if ! command -v go >/dev/null 2>&1; then
		if [[ -x /usr/local/go/bin/go ]]; then
			# A child cannot change its caller's PATH: say what to add.
			go_note="; go is at /usr/local/go/bin (add it to PATH)"
		elif [[ -z $(missing_packages golang-go) ]]; then
			go_note="; golang-go is installed but go is not on PATH (/usr/lib/go/bin)"
		else
			missing+=(golang-go)
		fi
	fi

	if [[ ${#missing[@]} -eq 0 ]]; then
		echo "deps: all present${go_note}"
		return 0
	fi

	echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}" >&2
	as_root apt-get -o DPkg::Lock::Timeout=300 -q update >&2
	apt_install "${missing[@]}" >&2
	mapfile -t installed < <(missing_packages "${missing[@]}")
	if [[ ${#installed[@]} -ne 0 ]]; then
		echo "deps: still missing after apt-get install: ${installed[*]}" >&2
		return 1
	fi
	echo "deps: installed ${missing[*]} in $(secs_since "${t0}") s${go_note}"
}

main "$@"
