# SPDX-License-Identifier: Apache-2.0
"""make bench, QoS accuracy (issue 15): achieved vs configured rate for per-volume QoS set with
ControllerModifyVolume, through a librbd client that has the image open all along (as the fuse
and rbd-nbd mappers do), so every limit also shows that a change reaches an open client.

For each of 3 write-IOPS limits and 1 write-bytes/s limit: ModifyVolume, then one second's worth
of writes to drain the burst bucket (librbd's burst defaults to the limit, over 1 s), then
BENCH_QOS_SECONDS of sequential synchronous writes (4 KiB for IOPS, 64 KiB for bytes/s) from
one thread; achieved = writes (or bytes) / elapsed. The same client's unlimited rate is measured
first, so a limit near it would show. Reported, never asserted.

    /usr/bin/python3 tests/bench/qos.py --rbdcsi build/rbdcsi --monitors MON --user csi \
        --pool rbd --json OUT.json   <<<"$KEY"

Starts its own controller on a socket in a private directory; the key is read from stdin and
goes to the controller in CSI secrets and to librados in memory (never argv or environment).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def stubs(build):
    py = os.path.join(TOP, build, "py")
    proto = os.path.join(TOP, build, "proto", "csi.proto")
    if not os.path.exists(os.path.join(py, "csi_pb2_grpc.py")):
        os.makedirs(py, exist_ok=True)
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.dirname(proto),
                        "-I/usr/include", "--python_out=" + py, "--grpc_python_out=" + py, proto],
                       check=True)
    sys.path.insert(0, py)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rbdcsi", required=True)
    ap.add_argument("--monitors", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--build", default=os.environ.get("B", "build"))
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("BENCH_QOS_SECONDS", "4")))
    ap.add_argument("--iops", default=os.environ.get("BENCH_QOS_IOPS", "25 100 400"))
    ap.add_argument("--bps", type=int,
                    default=int(os.environ.get("BENCH_QOS_BPS", str(4 * 1024 * 1024))))
    a = ap.parse_args()
    key = sys.stdin.readline().strip()
    stubs(a.build)
    import grpc
    import csi_pb2 as csi
    import csi_pb2_grpc as csi_grpc
    import rados
    import rbd

    work = tempfile.mkdtemp(prefix="rbdcsi-qos-bench.")
    sock = os.path.join(work, "csi.sock")
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump([{"clusterID": "qos", "monitors": [a.monitors]}], f)
    log = open(os.path.join(work, "controller.log"), "wb")
    env = {k: v for k, v in os.environ.items() if "KEY" not in k}
    ctl = subprocess.Popen([a.rbdcsi, "--mode=controller", "--endpoint=unix://" + sock,
                            "--config=" + os.path.join(work, "config.json")],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           env=env)
    secrets = {"userID": a.user, "userKey": key}
    vid = None
    cluster = ioctx = img = None
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        ch = grpc.insecure_channel("unix://" + sock)
        c = csi_grpc.ControllerStub(ch)
        cap = csi.VolumeCapability(
            block=csi.VolumeCapability.BlockVolume(),
            access_mode=csi.VolumeCapability.AccessMode(mode=1))
        v = c.CreateVolume(csi.CreateVolumeRequest(
            name="bench-qos-%d" % os.getpid(), volume_capabilities=[cap],
            capacity_range=csi.CapacityRange(required_bytes=256 * 1024 * 1024),
            parameters={"clusterID": "qos", "pool": a.pool}, secrets=secrets),
            timeout=60).volume
        vid = v.volume_id

        def modify(params):
            c.ControllerModifyVolume(csi.ControllerModifyVolumeRequest(
                volume_id=vid, mutable_parameters=params, secrets=secrets), timeout=60)

        cluster = rados.Rados(conf={"mon_host": a.monitors, "key": key,
                                    "client_mount_timeout": "15",
                                    "rados_osd_op_timeout": "30"}, name="client." + a.user)
        cluster.connect(timeout=15)
        ioctx = cluster.open_ioctx(a.pool)
        img = rbd.Image(ioctx, v.volume_context["imageName"])  # open all along
        size = img.size()

        def run(bs, count=None, seconds=None):
            buf = b"\xa5" * bs
            n = 0
            t0 = time.monotonic()
            while True:
                img.write(buf, (n * bs) % (size - bs))
                n += 1
                if count is not None and n >= count:
                    break
                if seconds is not None and time.monotonic() - t0 >= seconds:
                    break
            return n, time.monotonic() - t0

        n, t = run(4096, seconds=min(a.seconds, 2))
        out = {"seconds": a.seconds, "unlimited_4k_write_iops": round(n / t, 1),
               "client": "librbd (python3-rbd), image opened before every ModifyVolume",
               "iops": [], "bps": None}
        for limit in [int(x) for x in a.iops.split()]:
            modify({"maxWriteIops": str(limit)})
            run(4096, count=limit)  # drain the burst bucket
            n, t = run(4096, seconds=a.seconds)
            achieved = n / t
            out["iops"].append({"configured": limit, "achieved": round(achieved, 1),
                                "ratio": round(achieved / limit, 3), "writes": n,
                                "elapsed_s": round(t, 3)})
            print("qos: maxWriteIops %d -> %.1f achieved (%.3f)" % (limit, achieved,
                                                                     achieved / limit),
                  file=sys.stderr)
        modify({"maxWriteIops": "0", "maxWriteBps": str(a.bps)})
        bs = 65536
        run(bs, count=max(1, a.bps // bs))
        n, t = run(bs, seconds=a.seconds)
        achieved = n * bs / t
        out["bps"] = {"configured": a.bps, "achieved": round(achieved), "block": bs,
                      "ratio": round(achieved / a.bps, 3), "elapsed_s": round(t, 3)}
        print("qos: maxWriteBps %d -> %.0f achieved (%.3f)" % (a.bps, achieved,
                                                                achieved / a.bps),
              file=sys.stderr)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    finally:
        if img:
            img.close()
        if ioctx:
            ioctx.close()
        if cluster:
            cluster.shutdown()
        if vid:
            c.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets), timeout=60)
        ctl.terminate()
        ctl.wait(30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
