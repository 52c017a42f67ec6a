# SPDX-License-Identifier: Apache-2.0
"""The README demo, step by step, against the real binary and the throwaway Ceph of demo.sh:
a volume is created, expanded, staged, published, written, read back, moved to another node,
unpublished, unstaged and deleted; each step prints what it did on the host."""
import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from lib import MiB, Driver, ceph, csi, mount_cap, sc_params, secrets  # noqa: E402

N = [0]


def step(text):
    N[0] += 1
    print("\n[%d] %s" % (N[0], text), flush=True)


def show(text):
    print("    " + text, flush=True)


def mounts_of(path):
    with open("/proc/self/mounts") as f:
        return [" ".join(l.split()[:3]) for l in f if path in l]


def main():
    c = ceph()
    step("starting rbdcsi --mode=all (controller + node) on a Unix socket")
    d = Driver(name="demo", nodeid="demo-node-1")
    show("serving on %s, log in %s" % (d.endpoint, d.log_path))
    d2 = None
    try:
        info = d.identity.GetPluginInfo(csi.GetPluginInfoRequest())
        show("GetPluginInfo: %s %s; Probe ready=%s" % (
            info.name, info.vendor_version, d.identity.Probe(csi.ProbeRequest()).ready.value))

        step("CreateVolume 'demo-pvc' (64 MiB, ext4, rbd-fuse mapper) in pool '%s'" % c["pool"])
        cap = mount_cap("ext4")
        vol = d.controller.CreateVolume(csi.CreateVolumeRequest(
            name="demo-pvc", capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
            volume_capabilities=[cap], parameters=sc_params(mounter="fuse"),
            secrets=secrets())).volume
        show("volume_id %s" % vol.volume_id)
        img = "%s/%s" % (c["pool"], vol.volume_context["imageName"])
        out = subprocess.run(["rbd", "-c", c["conf"], "info", img], capture_output=True,
                             text=True).stdout.splitlines()
        show("rbd info %s: %s" % (img, "; ".join(l.strip() for l in out[1:3])))

        step("ControllerExpandVolume to 96 MiB")
        r = d.controller.ControllerExpandVolume(csi.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi.CapacityRange(required_bytes=96 * MiB),
            secrets=secrets()))
        show("capacity now %d MiB (node expansion required: %s)" % (
            r.capacity_bytes // MiB, r.node_expansion_required))

        step("ControllerPublishVolume to node 'demo-node-1' (the attachment is recorded)")
        d.controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id="demo-node-1", volume_capability=cap,
            secrets=secrets()))
        show("published nodes: %s" % list(d.controller.ControllerGetVolume(
            csi.ControllerGetVolumeRequest(volume_id=vol.volume_id)).status.published_node_ids))

        staging = os.path.join(d.dir, "plugins", "globalmount")
        target = os.path.join(d.dir, "pods", "demo-pod", "volume")
        os.makedirs(staging)
        os.makedirs(os.path.dirname(target))
        step("NodeStageVolume at %s" % staging)
        d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=vol.volume_context, secrets=secrets()), timeout=120)
        for m in mounts_of(d.dir):
            show("mount: " + m)
        show("loop devices: " + "; ".join(subprocess.run(
            ["losetup", "-a"], capture_output=True, text=True).stdout.strip().splitlines()))

        step("NodePublishVolume at %s" % target)
        d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap))
        show("bind mount: " + mounts_of(target)[0])

        step("writing 4 MiB of random data into the published volume")
        data = os.urandom(4 * MiB)
        with open(os.path.join(target, "hello.bin"), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        want = hashlib.sha256(data).hexdigest()
        show("sha256 %s" % want)
        st = d.node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(
            volume_id=vol.volume_id, volume_path=target))
        show("NodeGetVolumeStats: %s; condition: %s" % (
            ", ".join("%s %d/%d" % (csi.VolumeUsage.Unit.Name(u.unit), u.used, u.total)
                      for u in st.usage), st.volume_condition.message))

        step("reading it back")
        with open(os.path.join(target, "hello.bin"), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        show("sha256 %s: %s" % (got, "match" if got == want else "MISMATCH"))
        if got != want:
            sys.exit(1)

        step("CreateSnapshot 'demo-snap', then overwrite the file in the live volume")
        snap = d.controller.CreateSnapshot(csi.CreateSnapshotRequest(
            source_volume_id=vol.volume_id, name="demo-snap", secrets=secrets())).snapshot
        show("snapshot_id %s, %d MiB, ready_to_use=%s" % (
            snap.snapshot_id, snap.size_bytes // MiB, snap.ready_to_use))
        with open(os.path.join(target, "hello.bin"), "wb") as f:
            f.write(os.urandom(4 * MiB))
            f.flush()
            os.fsync(f.fileno())
        show("hello.bin overwritten with other random data")

        step("CreateVolume 'demo-restore' from the snapshot, stage and publish it, read")
        rvol = d.controller.CreateVolume(csi.CreateVolumeRequest(
            name="demo-restore", volume_capabilities=[cap], parameters=sc_params(mounter="fuse"),
            volume_content_source=csi.VolumeContentSource(
                snapshot=csi.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)),
            secrets=secrets())).volume
        rstaging = os.path.join(d.dir, "plugins", "globalmount-restore")
        rtarget = os.path.join(d.dir, "pods", "demo-pod-2", "volume")
        os.makedirs(rstaging)
        os.makedirs(os.path.dirname(rtarget))
        d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=rvol.volume_id, staging_target_path=rstaging, volume_capability=cap,
            volume_context=rvol.volume_context, secrets=secrets()), timeout=120)
        d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=rvol.volume_id, staging_target_path=rstaging, target_path=rtarget,
            volume_capability=cap))
        with open(os.path.join(rtarget, "hello.bin"), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        show("restored image %s: sha256 %s: %s" % (
            rvol.volume_context["imageName"], got,
            "the original data" if got == want else "MISMATCH"))
        d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=rvol.volume_id, target_path=rtarget))
        d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=rvol.volume_id, staging_target_path=rstaging), timeout=120)
        d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=rvol.volume_id,
                                                          secrets=secrets()))
        d.controller.DeleteSnapshot(csi.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id,
                                                              secrets=secrets()))
        show("restored volume and snapshot deleted")
        if got != want:
            sys.exit(1)
        with open(os.path.join(target, "hello.bin"), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()

        step("NodeUnpublishVolume + NodeUnstageVolume (umount, loop detach, rbd-fuse stopped)")
        d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=vol.volume_id, target_path=target))
        d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
        show("mounts left under the demo dir: %d" % len(mounts_of(d.dir)))
        d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
            volume_id=vol.volume_id, node_id="demo-node-1", secrets=secrets()))

        step("the pod moves: a second node plugin stages the volume and reads the data")
        d2 = Driver("--kubelet-dir=" + d.dir, mode="node", nodeid="demo-node-2", name="demo2")
        d2.node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
            volume_context=vol.volume_context, secrets=secrets()), timeout=120)
        d2.node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=cap, readonly=True))
        with open(os.path.join(target, "hello.bin"), "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        show("sha256 on demo-node-2 %s: %s" % (got, "match" if got == want else "MISMATCH"))
        d2.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
            volume_id=vol.volume_id, target_path=target))
        d2.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
        if got != want:
            sys.exit(1)

        step("DeleteVolume")
        d.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                          secrets=secrets()))
        left = subprocess.run(["rbd", "-c", c["conf"], "ls", c["pool"]], capture_output=True,
                              text=True).stdout.split()
        trash = subprocess.run(["rbd", "-c", c["conf"], "trash", "ls", c["pool"]],
                               capture_output=True, text=True).stdout.split()
        show("images left in pool '%s': %d, in its trash: %d" % (c["pool"], len(left),
                                                                 len(trash)))
    finally:
        step("stopping rbdcsi (SIGTERM)")
        if d2:
            show("node 2 exit code %d" % d2.stop())
        show("exit code %d" % d.stop())


if __name__ == "__main__":
    main()
