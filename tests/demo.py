# SPDX-License-Identifier: Apache-2.0
"""The README demo, step by step, against the real binary and the throwaway Ceph of demo.sh."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from lib import Driver, csi  # noqa: E402


def step(n, text):
    print("\n[%d] %s" % (n, text))


def main():
    step(1, "starting rbdcsi --mode=all on a Unix socket")
    d = Driver(name="demo")
    print("    serving on %s (log: %s)" % (d.endpoint, d.log_path))
    try:
        step(2, "Identity/GetPluginInfo")
        info = d.identity.GetPluginInfo(csi.GetPluginInfoRequest())
        print("    name=%s vendor_version=%s" % (info.name, info.vendor_version))
        step(3, "Identity/Probe")
        print("    ready=%s" % d.identity.Probe(csi.ProbeRequest()).ready.value)
    finally:
        step(99, "stopping rbdcsi (SIGTERM)")
        print("    exit code %d" % d.stop())


if __name__ == "__main__":
    main()
