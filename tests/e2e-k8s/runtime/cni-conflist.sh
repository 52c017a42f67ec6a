#!/usr/bin/env bash
# Print the CNI network configuration of the Kubernetes e2e test: a bridge with host-local IPAM,
# no portmap (it would need iptables) and no masquerading. Test pods use hostNetwork; this only
# exists so that the runtime reports NetworkReady and the node becomes Ready.
#
#   tests/e2e-k8s/runtime/cni-conflist.sh E2E_DIR [RUN_DIR] > E2E_DIR/cni/net.d/10-rbdcsi-e2e.conflist
#
# Network ${RT_NET_NAME:-rbdcsi-e2e}, bridge ${RT_BRIDGE:-rbdcsie2e0} (gateway .1 on the host), subnet
# ${RT_SUBNET:-10.244.0.0/24}; host-local keeps its leases in RUN_DIR/cni/networks (default
# RUN_DIR: /run/<basename of E2E_DIR>), not in /var/lib/cni. libcni itself still caches results
# in /var/lib/cni/results/<network>-* (removed on CNI DEL; lib.sh rt_clean removes leftovers).
set -euo pipefail

[[ $# -ge 1 && $# -le 2 ]] || {
	echo "usage: $0 E2E_DIR [RUN_DIR] > 10-rbdcsi-e2e.conflist" >&2
	exit 2
}
E2E=$1
RUN=${2:-/run/$(basename "${E2E}")}
BRIDGE=${RT_BRIDGE:-rbdcsie2e0}
SUBNET=${RT_SUBNET:-10.244.0.0/24}
NAME=${RT_NET_NAME:-rbdcsi-e2e}
[[ ${RUN} == /* && ${RUN} != *[\"\\[:space:]]* ]] || {
	echo "$0: ${RUN}: need an absolute path without quotes, backslashes or spaces" >&2
	exit 2
}
[[ ${BRIDGE} =~ ^[a-z0-9]{1,15}$ ]] || {
	echo "$0: bad bridge name ${BRIDGE}" >&2
	exit 2
}
[[ ${NAME} =~ ^[a-z0-9-]{1,40}$ ]] || {
	echo "$0: bad network name ${NAME}" >&2
	exit 2
}
[[ ${SUBNET} =~ ^[0-9.]+/[0-9]+$ ]] || {
	echo "$0: bad subnet ${SUBNET}" >&2
	exit 2
}

cat <<JSON
{
  "cniVersion": "1.0.0",
  "name": "${NAME}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "${SUBNET}" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "${RUN}/cni/networks"
      }
    }
  ]
}
JSON
