# SPDX-License-Identifier: Apache-2.0
"""make bench, group snapshots (issue 15): CreateVolumeGroupSnapshot latency for groups of 2 and
8 volumes, as a ratio to the floor of taking the same snapshots one by one (CreateSnapshot per
volume, sequentially, through the same plugin), in alternating rounds in one run. Each volume
has BENCH_GROUP_WRITE_MIB of data written into it first (members are copies on Ceph before 19.2,
so the data a volume holds is part of the price; see README.md "Volume group snapshots").
Absolute times are printed, never asserted.

    python3 group_snapshot.py --endpoint unix://SOCK --cluster bench --pool rbd --user csi \
        --monitors MONS --json OUT.json  < key

The key comes on stdin. Everything made is deleted again, also on failure.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "build", "py"))

import grpc  # noqa: E402
import csi_pb2 as csi  # noqa: E402
import csi_pb2_grpc as csi_grpc  # noqa: E402

try:
    import rados
    import rbd
except ImportError:
    rados = rbd = None

MiB = 1 << 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--monitors", required=True)
    ap.add_argument("--sizes", default=os.environ.get("BENCH_GROUP_SIZES", "2 8"))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_GROUP_ROUNDS", "3")))
    ap.add_argument("--volume-mib", type=int,
                    default=int(os.environ.get("BENCH_GROUP_VOLUME_MIB", "256")))
    ap.add_argument("--write-mib", type=int,
                    default=int(os.environ.get("BENCH_GROUP_WRITE_MIB", "16")))
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    key = sys.stdin.readline().strip()
    secrets = {"userID": a.user, "userKey": key}

    ch = grpc.insecure_channel(a.endpoint)
    ctl = csi_grpc.ControllerStub(ch)
    grp = csi_grpc.GroupControllerStub(ch)
    cap = csi.VolumeCapability(mount=csi.VolumeCapability.MountVolume(),
                               access_mode=csi.VolumeCapability.AccessMode(
                                   mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    params = {"clusterID": a.cluster, "pool": a.pool}

    cluster = io = None
    if rados and a.write_mib > 0:
        cluster = rados.Rados(rados_id=a.user, conf={"mon_host": a.monitors, "key": key})
        cluster.connect(timeout=30)
        io = cluster.open_ioctx(a.pool)

    made_vols, made_snaps, made_groups = [], [], []
    result = {"volume_mib": a.volume_mib, "write_mib": a.write_mib, "rounds": a.rounds,
              "groups": {}}
    try:
        for n in [int(x) for x in a.sizes.split()]:
            vols = []
            for i in range(n):
                v = ctl.CreateVolume(csi.CreateVolumeRequest(
                    name="bench-group-%d-%d" % (n, i),
                    capacity_range=csi.CapacityRange(required_bytes=a.volume_mib * MiB),
                    volume_capabilities=[cap], parameters=params, secrets=secrets),
                    timeout=300).volume
                made_vols.append(v.volume_id)
                vols.append(v)
                if io:
                    with rbd.Image(io, v.volume_context["imageName"]) as img:
                        block = os.urandom(MiB)
                        for off in range(a.write_mib):
                            img.write(block, off * MiB)
            ids = [v.volume_id for v in vols]
            group_ms, seq_ms = [], []
            for r in range(a.rounds):
                # Alternate which goes first, so drift favours neither.
                order = ("group", "seq") if r % 2 == 0 else ("seq", "group")
                for kind in order:
                    if kind == "group":
                        t = time.monotonic()
                        gs = grp.CreateVolumeGroupSnapshot(csi.CreateVolumeGroupSnapshotRequest(
                            name="bench-group-%d-r%d" % (n, r), source_volume_ids=ids,
                            secrets=secrets), timeout=600).group_snapshot
                        group_ms.append((time.monotonic() - t) * 1000)
                        made_groups.append(gs.group_snapshot_id)
                        grp.DeleteVolumeGroupSnapshot(csi.DeleteVolumeGroupSnapshotRequest(
                            group_snapshot_id=gs.group_snapshot_id, secrets=secrets),
                            timeout=600)
                        made_groups.remove(gs.group_snapshot_id)
                    else:
                        t = time.monotonic()
                        sids = []
                        for k, vid in enumerate(ids):
                            s = ctl.CreateSnapshot(csi.CreateSnapshotRequest(
                                name="bench-seq-%d-r%d-%d" % (n, r, k), source_volume_id=vid,
                                secrets=secrets), timeout=600).snapshot
                            sids.append(s.snapshot_id)
                            made_snaps.append(s.snapshot_id)
                        seq_ms.append((time.monotonic() - t) * 1000)
                        for sid in sids:
                            ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=sid,
                                                                         secrets=secrets),
                                               timeout=600)
                            made_snaps.remove(sid)
            g, s = statistics.median(group_ms), statistics.median(seq_ms)
            result["groups"][str(n)] = {
                "group_ms": [round(x, 1) for x in group_ms],
                "one_by_one_ms": [round(x, 1) for x in seq_ms],
                "group_median_ms": round(g, 1), "one_by_one_median_ms": round(s, 1),
                "ratio": round(g / s, 3),
            }
            print("group snapshot of %d volumes: median %.0f ms; the same %d snapshots one by "
                  "one: median %.0f ms; ratio %.2f" % (n, g, n, s, g / s), file=sys.stderr)
    finally:
        for gid in made_groups:
            grp.DeleteVolumeGroupSnapshot(csi.DeleteVolumeGroupSnapshotRequest(
                group_snapshot_id=gid, secrets=secrets), timeout=600)
        for sid in made_snaps:
            ctl.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=sid, secrets=secrets),
                               timeout=600)
        for vid in made_vols:
            ctl.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets), timeout=600)
        if io:
            io.close()
            cluster.shutdown()
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
