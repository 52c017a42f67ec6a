#!/usr/bin/env bash
# Layering and hygiene lint (STYLE.md): dependencies point one way, banned functions stay out.
set -u
cd "$(dirname "$0")/.."
bad=0
say() {
	echo "lint: $*" >&2
	bad=1
}

# driver/ never includes gRPC or protobuf headers, nor plugin/.
if grep -rnE '#include\s*[<"](grpc/|protobuf-c/|csi\.pb-c|google/protobuf|plugin/)' driver/; then
	say "driver/ must not include gRPC, protobuf or plugin headers"
fi
# Only driver/ceph includes librados/librbd.
if grep -rnE '#include\s*<(rados|rbd)/' --include='*.[ch]' driver/base driver/host plugin; then
	say "only driver/ceph may include librados/librbd"
fi
# driver/ceph and driver/host do not include each other.
if grep -rnE '#include\s*"driver/host/' driver/ceph || grep -rnE '#include\s*"driver/ceph/' driver/host; then
	say "driver/ceph and driver/host must not include each other"
fi
# Only plugin/transport.c knows the gRPC core API.
if grep -lE '#include\s*<grpc/' plugin/*.c plugin/*.h | grep -v '^plugin/transport.c$'; then
	say "only plugin/transport.c may include gRPC headers"
fi
# Only plugin/metrics.c knows the HTTP library.
if grep -lE '#include\s*<microhttpd' -r driver plugin | grep -v '^plugin/metrics.c$'; then
	say "only plugin/metrics.c may include microhttpd.h"
fi
# Only plugin/kube_api.c knows libcurl (loaded with dlopen: nothing else may call it by name).
if grep -lE '#include\s*<curl/' -r driver plugin | grep -v '^plugin/kube_api.c$'; then
	say "only plugin/kube_api.c may include curl/curl.h"
fi
# plugin/ never calls librbd/librados/mount(2) directly.
if grep -nE '\b(rbd|rados)_[a-z_]+\(' plugin/*.c; then
	say "plugin/ must go through driver/ for Ceph calls"
fi
# Banned functions.
if grep -rnE '\b(atoi|atol|atoll|strcpy|strcat|sprintf|vsprintf|strtok|system|popen|gets)\s*\(' \
	--include='*.[ch]' driver plugin tests/unit tests/fuzz 2>/dev/null; then
	say "banned function used (atoi strcpy strcat sprintf strtok system popen gets)"
fi
# No // comments in C.
if grep -rnE '^\s*//' --include='*.[ch]' driver plugin; then
	say "use /* */ comments"
fi
# Library prefixes are not ours to define.
if grep -rnE '^[a-z].*\b(rbd|rados|mnt|blkid|udev|grpc|protobuf_c|csi__v1)_[a-z0-9_]+\s*\([^;]*$' \
	--include='*.c' driver plugin | grep -vE '=|return|\bif\b|\bwhile\b|^\S+:\s' | grep -E '^[^:]+:[0-9]+:(static )?[a-z_ ]+\*?\s*(rbd|rados|mnt|blkid|udev|grpc|protobuf_c|csi__v1)_'; then
	say "functions must not use the prefixes our libraries own"
fi
# No include cycle between the modules of driver/ (X.c and X.h are module X; a header without a
# .c of its own, like cluster_ioctx.h, is no module: what includes it depends on what it includes).
# tsort names the modules of a loop.
driver_edges() {
	grep -rHoE '^#include\s*"driver/[^"]+\.h"' driver --include='*.[ch]' |
		sed -E 's|^([^:]+)\.[ch]:#include\s*"([^"]+)\.h"|\1 \2|' | sort -u |
		awk -v cfiles="$(ls driver/*/*.c)" '
		BEGIN { n = split(cfiles, cs, "\n"); for (i = 1; i <= n; i++) { sub(/\.c$/, "", cs[i]); real[cs[i]] = 1 } }
		{ out[$1] = out[$1] " " $2 }
		function walk(m, from, seen,   k, t, i) {
			k = split(out[m], t, " ")
			for (i = 1; i <= k; i++) {
				if (t[i] in seen)
					continue
				seen[t[i]] = 1
				if (t[i] in real) {
					if (t[i] != from)
						print from, t[i]
				} else
					walk(t[i], from, seen)
			}
		}
		END { for (m in out) if (m in real) { split("", seen); walk(m, m, seen) } }' | sort -u
}
if ! loops=$(driver_edges | tsort 2>&1 >/dev/null); then
	echo "$loops" >&2
	say "include cycle between driver/ modules (see the tsort loop above)"
fi
if [ "$bad" -eq 0 ]; then
	echo "  LINT    layering, include cycles, banned functions, comments: ok"
fi
exit "$bad"
