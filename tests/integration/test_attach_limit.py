# SPDX-License-Identifier: Apache-2.0
"""ControllerPublishVolume with --max-volumes-per-node given to the controller: a node holding
that many attachments in the pool gets no more (RESOURCE_EXHAUSTED), a retry of a publish it
holds still succeeds, other nodes are not affected, and an unpublish frees a place."""
import unittest

import grpc

from lib import MiB, Driver, code_of, csi, mount_cap, need_ceph, sc_params, secrets


@need_ceph
class TestAttachLimit(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Driver("--max-volumes-per-node=2", mode="controller", name="attach-limit")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def publish(self, vid, node):
        return code_of(self.d.controller.ControllerPublishVolume,
                       csi.ControllerPublishVolumeRequest(volume_id=vid, node_id=node,
                                                          volume_capability=mount_cap(),
                                                          secrets=secrets()))

    def unpublish(self, vid, node):
        self.d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
            volume_id=vid, node_id=node, secrets=secrets()))

    def test_attach_limit__refuses_past_the_limit_per_node(self):
        vids = []
        try:
            for i in range(3):
                vids.append(self.d.controller.CreateVolume(csi.CreateVolumeRequest(
                    name="pvc-attach-limit-%d" % i,
                    capacity_range=csi.CapacityRange(required_bytes=64 * MiB),
                    volume_capabilities=[mount_cap()], parameters=sc_params(),
                    secrets=secrets())).volume.volume_id)
            for vid in vids[:2]:
                self.assertEqual(self.publish(vid, "limit-node-a")[0], grpc.StatusCode.OK)
            code, msg = self.publish(vids[2], "limit-node-a")
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, msg)
            self.assertIn("limit-node-a", msg)
            # A retry of a publish the node holds is not a new attachment.
            self.assertEqual(self.publish(vids[0], "limit-node-a")[0], grpc.StatusCode.OK)
            self.assertEqual(self.publish(vids[2], "limit-node-b")[0], grpc.StatusCode.OK)
            self.unpublish(vids[2], "limit-node-b")
            self.unpublish(vids[1], "limit-node-a")
            self.assertEqual(self.publish(vids[2], "limit-node-a")[0], grpc.StatusCode.OK)
        finally:
            for vid in vids:
                for node in ("limit-node-a", "limit-node-b"):
                    code_of(self.unpublish, vid, node)
                code_of(self.d.controller.DeleteVolume,
                        csi.DeleteVolumeRequest(volume_id=vid, secrets=secrets()))


if __name__ == "__main__":
    unittest.main()
