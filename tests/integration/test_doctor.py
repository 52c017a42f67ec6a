# SPDX-License-Identifier: Apache-2.0
"""`rbdcsi doctor` against deliberately broken pools: volumes made through the real binary, then
broken with rados/rbd commands (an image removed, an entry object removed, a directory key
removed, a driver image with no entry, a trash leftover, a foreign image, attachments to a node
that is gone, PVs pointing at nothing); the doctor finds each of them and nothing else, changes
nothing without --repair, and with --repair fixes only what is provably safe - never a volume in
use (watchers, attachments). Also: exit codes, --output=json, --textfile, the key never on argv,
and --node mode (stage state files without mounts, mounts without state)."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from lib import (MiB, RBDCSI, Driver, ceph, ceph_cli, csi, monitors_list, mount_cap, need_ceph,
                 need_root, secrets)

NS = "doctor"
CLUSTER = "doc"


def ns_objects(pool):
    return sorted(ceph_cli("rados", "-p", pool, "--namespace", NS, "ls").split())


def ns_state(pool):
    """Everything of the namespace the doctor may change: objects, directory keys, images,
    trash, and each entry's omap."""
    st = {"objects": ns_objects(pool),
          "images": sorted(ceph_cli("rbd", "ls", "%s/%s" % (pool, NS)).split()),
          "trash": ceph_cli("rbd", "trash", "ls", "%s/%s" % (pool, NS)).split()}
    for o in st["objects"]:
        if o.startswith("rbdcsi."):
            st[o] = ceph_cli("rados", "-p", pool, "--namespace", NS, "listomapvals", o)
    return st


@need_ceph
class TestDoctor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = ceph()["pool"]
        cls.tmp = tempfile.mkdtemp(prefix="rbdcsi-doctor.")
        ceph_cli("rbd", "namespace", "create", "%s/%s" % (cls.pool, NS), check=False)
        cls.config = os.path.join(cls.tmp, "config.json")
        with open(cls.config, "w") as f:
            json.dump([{"clusterID": CLUSTER, "monitors": monitors_list(),
                        "radosNamespace": NS}], f)
        # The key as a mounted Secret would give it: files userID and userKey.
        cls.secret_dir = os.path.join(cls.tmp, "secret")
        os.mkdir(cls.secret_dir, 0o700)
        for k, v in secrets().items():
            with open(os.path.join(cls.secret_dir, k), "w") as f:
                f.write(v)
        cls.d = Driver("--config=" + cls.config, mode="controller", config=False,
                       name="doctor-controller")
        cls.watchers = []

    @classmethod
    def tearDownClass(cls):
        for w in cls.watchers:
            w.kill()
            w.wait()
        cls.d.stop()
        pool = cls.pool
        spec = "%s/%s" % (pool, NS)
        for img in ceph_cli("rbd", "ls", spec).split():
            ceph_cli("rbd", "snap", "purge", "%s/%s" % (spec, img), check=False)
            ceph_cli("rbd", "rm", "%s/%s" % (spec, img), check=False)
        for line in ceph_cli("rbd", "trash", "ls", spec).splitlines():
            ceph_cli("rbd", "trash", "rm", "--pool", pool, "--namespace", NS, line.split()[0],
                     check=False)
        for o in ns_objects(pool):
            ceph_cli("rados", "-p", pool, "--namespace", NS, "rm", o, check=False)
        ceph_cli("rbd", "namespace", "remove", spec, check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----

    def doctor(self, *args, expect=None):
        argv = [RBDCSI, "doctor", "--config=" + self.config, "--cluster=" + CLUSTER,
                "--secret-dir=" + self.secret_dir, "--pool=" + self.pool, "--output=json",
                "--ceph-timeout=20", *args]
        self.assertNotIn(secrets()["userKey"], " ".join(argv))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertNotIn(secrets()["userKey"], r.stdout + r.stderr)
        if expect is not None:
            self.assertEqual(r.returncode, expect, r.stdout + r.stderr)
        return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr

    def create(self, name):
        params = {"clusterID": CLUSTER, "pool": self.pool}
        return self.d.controller.CreateVolume(csi.CreateVolumeRequest(
            name=name, capacity_range=csi.CapacityRange(required_bytes=8 * MiB),
            volume_capabilities=[mount_cap()], parameters=params,
            secrets=secrets())).volume.volume_id

    def publish(self, vid, node):
        self.d.controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
            volume_id=vid, node_id=node, volume_capability=mount_cap(), secrets=secrets()))

    def rados(self, *args):
        return ceph_cli("rados", "-p", self.pool, "--namespace", NS, *args)

    def rbd_spec(self, image):
        return "%s/%s/%s" % (self.pool, NS, image)

    def image_of(self, vid):
        uuid = vid[-36:]
        return self.rados("getomapval", "rbdcsi.volume." + uuid, "image", "/dev/stdout") \
            .strip(), uuid

    def watch(self, image):
        """A watcher on the image's header, as a mapping on a node would register."""
        info = json.loads(ceph_cli("rbd", "info", "--format=json", self.rbd_spec(image)))
        # The test cluster's osd_client_watch_timeout is 5 s, librados pings each objecter
        # tick (5 s by default): tick every second, or the watch lapses within ~20 s.
        w = subprocess.Popen(["rados", "-c", ceph()["conf"], "--objecter-tick-interval=1",
                              "-p", self.pool, "--namespace", NS,
                              "watch", "rbd_header." + info["id"]],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.PIPE)  # it watches until its stdin ends
        self.watchers.append(w)
        for _ in range(100):
            out = ceph_cli("rbd", "status", "--format=json", self.rbd_spec(image))
            if json.loads(out).get("watchers"):
                return w
            time.sleep(0.1)
        self.fail("no watcher on %s" % image)

    @staticmethod
    def kinds(report):
        return sorted((f["kind"], f["object"]) for f in report["findings"])

    # ---- the test ----

    def test_doctor__finds_drift_and_repairs_only_what_is_safe(self):
        # A clean namespace: exit 0, nothing found.
        code, rep, err = self.doctor(expect=0)
        self.assertEqual(rep["findings"], [], err)

        good = self.create("pvc-good")           # healthy, referenced by a PV
        no_image = self.create("pvc-no-image")   # its image removed behind the driver's back
        no_entry = self.create("pvc-no-entry")   # its entry object removed
        no_key = self.create("pvc-no-key")       # its directory key removed
        in_use = self.create("pvc-in-use")       # attached to a gone node, image watched
        stale = self.create("pvc-stale")         # attached to a gone node, nobody watching
        attached = self.create("pvc-attached")   # image gone, but attached to a live node
        self.publish(in_use, "gone-node")
        self.publish(stale, "gone-node")
        self.publish(attached, "node-1")
        self.publish(good, "node-1")

        img_no_image, uuid_no_image = self.image_of(no_image)
        ceph_cli("rbd", "rm", self.rbd_spec(img_no_image))
        img_attached, uuid_attached = self.image_of(attached)
        ceph_cli("rbd", "rm", self.rbd_spec(img_attached))
        img_no_entry, uuid_no_entry = self.image_of(no_entry)
        self.rados("rm", "rbdcsi.volume." + uuid_no_entry)
        self.rados("rmomapkey", "rbdcsi.volumes", "pvc-no-key")
        _, uuid_no_key = self.image_of(no_key)
        img_in_use, _ = self.image_of(in_use)
        self.watch(img_in_use)
        # A driver image nobody knows, a foreign image, and a trashed driver image with
        # nothing hanging from it.
        ceph_cli("rbd", "create", "--size=4M", self.rbd_spec("csi-vol-orphan"))
        ceph_cli("rbd", "create", "--size=4M", self.rbd_spec("someones-image"))
        ceph_cli("rbd", "create", "--size=4M", self.rbd_spec("csi-vol-trashed"))
        ceph_cli("rbd", "trash", "mv", self.rbd_spec("csi-vol-trashed"))
        trash_id = ceph_cli("rbd", "trash", "ls", "%s/%s" % (self.pool, NS)).split()[0]
        # Temporary snapshots a create left: one of a CSI snapshot whose entry is gone, one of
        # a clone whose volume is created (on the watched image); an admin's own snapshot.
        img_good, _ = self.image_of(good)
        ceph_cli("rbd", "snap", "create",
                 self.rbd_spec(img_good) + "@rbdcsi-snap-11111111-1111-4111-8111-111111111111")
        ceph_cli("rbd", "snap", "create", self.rbd_spec(img_good) + "@backup")
        ceph_cli("rbd", "snap", "create",
                 self.rbd_spec(img_in_use) + "@rbdcsi-clone-" + stale[-36:])

        nodes = os.path.join(self.tmp, "nodes.json")
        with open(nodes, "w") as f:
            json.dump({"items": [{"metadata": {"name": "node-1"}}]}, f)
        gone = good[:-36] + "00000000-0000-4000-8000-000000000000"
        pvs = os.path.join(self.tmp, "pvs.json")
        with open(pvs, "w") as f:
            json.dump({"items": [
                {"metadata": {"name": "pv-good"},
                 "spec": {"csi": {"driver": "rbdcsi.io", "volumeHandle": good}}},
                {"metadata": {"name": "pv-gone"},
                 "spec": {"csi": {"driver": "rbdcsi.io", "volumeHandle": gone}}},
                {"metadata": {"name": "pv-other-driver"},
                 "spec": {"csi": {"driver": "other.csi", "volumeHandle": gone}}},
            ]}, f)

        before = ns_state(self.pool)
        code, rep, err = self.doctor("--nodes=" + nodes, "--pvs=" + pvs, expect=1)
        self.assertEqual(ns_state(self.pool), before, "a read-only run changed the pool")
        self.assertEqual(rep["foreign_images"], 1)
        want = sorted([
            ("entry_without_image", "rbdcsi.volume." + uuid_no_image),
            ("entry_without_image", "rbdcsi.volume." + uuid_attached),
            ("key_without_entry", "rbdcsi.volumes"),
            ("image_without_entry", img_no_entry),
            ("image_without_entry", "csi-vol-orphan"),
            ("entry_without_key", "rbdcsi.volume." + uuid_no_key),
            ("trash_leftover", trash_id),
            ("attachment_to_gone_node", img_in_use),
            ("attachment_to_gone_node", self.image_of(stale)[0]),
            ("pv_without_volume", "pv-gone"),
            # alive volumes without a PV (pvc-no-key is alive: its entry and image exist)
            ("volume_without_pv", in_use),
            ("volume_without_pv", stale),
            ("volume_without_pv", no_key),
            ("temp_snapshot_leftover", img_good),
            ("temp_snapshot_leftover", img_in_use),
        ])
        self.assertEqual(self.kinds(rep), want, json.dumps(rep, indent=1))
        self.assertTrue(all(f["repair"] is None for f in rep["findings"]))

        # Text output and the textfile for Prometheus.
        textfile = os.path.join(self.tmp, "doctor.prom")
        r = subprocess.run([RBDCSI, "doctor", "--config=" + self.config,
                            "--cluster=" + CLUSTER, "--secret-dir=" + self.secret_dir,
                            "--pool=" + self.pool, "--textfile=" + textfile],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("trash_leftover pool=%s/%s object=%s" % (self.pool, NS, trash_id),
                      r.stdout)
        with open(textfile) as f:
            prom = f.read()
        self.assertIn('rbdcsi_doctor_findings{kind="entry_without_image"} 2\n', prom)
        self.assertIn('rbdcsi_doctor_findings{kind="pv_without_volume"} 0\n', prom)
        self.assertIn("rbdcsi_doctor_last_run_success 1\n", prom)

        # --repair: only the safe ones.
        code, rep, err = self.doctor("--nodes=" + nodes, "--pvs=" + pvs, "--repair", expect=1)
        by = {(f["kind"], f["object"]): f for f in rep["findings"]}
        fixed = sorted(k for k, f in by.items() if f["repaired"])
        self.assertEqual(fixed, sorted([
            ("entry_without_image", "rbdcsi.volume." + uuid_no_image),
            ("trash_leftover", trash_id),
            ("attachment_to_gone_node", self.image_of(stale)[0]),
            ("temp_snapshot_leftover", img_good),
        ]), json.dumps(rep, indent=1))
        self.assertIn("watcher", by[("attachment_to_gone_node", img_in_use)]["repair"])
        self.assertIn("watcher", by[("temp_snapshot_leftover", img_in_use)]["repair"])
        snaps = lambda img: sorted(json.loads(ceph_cli(
            "rbd", "snap", "ls", "--format=json", self.rbd_spec(img))), key=lambda x: x["name"])
        self.assertEqual([x["name"] for x in snaps(img_good)], ["backup"])
        self.assertEqual([x["name"] for x in snaps(img_in_use)],
                         ["rbdcsi-clone-" + stale[-36:]])
        self.assertIn("attached to node node-1",
                      by[("entry_without_image", "rbdcsi.volume." + uuid_attached)]["repair"])
        after = ns_state(self.pool)
        # The volume in use kept everything: image, entry, attachment record.
        self.assertIn(img_in_use, after["images"])
        self.assertIn("attach.gone-node", after["rbdcsi.volume." + in_use[-36:]])
        self.assertIn("attach.node-1", after["rbdcsi.volume." + uuid_attached])
        # What was repaired is gone; data (images) was never removed.
        self.assertNotIn("rbdcsi.volume." + uuid_no_image, after["objects"])
        self.assertNotIn("pvc-no-image", self.rados("listomapkeys", "rbdcsi.volumes"))
        self.assertNotIn("attach.gone-node", after["rbdcsi.volume." + stale[-36:]])
        self.assertEqual(after["trash"], [])
        self.assertEqual(sorted(set(before["images"]) - set(after["images"])), [])
        # The healthy volume is untouched.
        self.assertEqual(after["rbdcsi.volume." + good[-36:]],
                         before["rbdcsi.volume." + good[-36:]])

        # A second repair (the watcher still there) finds nothing more to repair.
        self.assertTrue(json.loads(ceph_cli("rbd", "status", "--format=json",
                                            self.rbd_spec(img_in_use))).get("watchers"))
        code, rep2, err = self.doctor("--nodes=" + nodes, "--pvs=" + pvs, "--repair", expect=1)
        self.assertFalse(any(f["repaired"] for f in rep2["findings"]), rep2)
        self.assertEqual(len(rep2["findings"]), len(rep["findings"]) - 4)

    def test_doctor__kube_api(self):
        """--kube-api reads nodes and PVs from an API server over TLS with a bearer token; a
        server whose certificate does not verify, or that refuses the token, is an error."""
        import http.server
        import ssl
        import threading
        cert = os.path.join(self.tmp, "api.crt")
        key = os.path.join(self.tmp, "api.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        other = os.path.join(self.tmp, "other.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", os.path.join(self.tmp, "other.key"), "-out", other],
                       check=True, capture_output=True)
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("sekrit-token-123\n")
        gone = "0001-v-03-doc-%016x-06-doctor-22222222-2222-4222-8222-222222222222" % 1
        pv_list = {"items": [{"metadata": {"name": "pv-api-gone"},
                              "spec": {"csi": {"driver": "rbdcsi.io", "volumeHandle": gone}}}]}
        seen = []
        mode = {"answer": "ok"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != "Bearer sekrit-token-123":
                    self.send_error(401)
                    return
                if mode["answer"] == "forbidden":  # as the API server refuses a verb
                    data = json.dumps({"kind": "Status", "status": "Failure", "code": 403,
                                       "reason": "Forbidden", "message": "nodes is forbidden: "
                                       "User \"system:serviceaccount:x:y\" cannot list"}).encode()
                    self.send_response(403)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if mode["answer"] in ("big", "big-length"):
                    # 64 MiB + 1 MiB of body: announced (refused on the header), or ending with
                    # the connection (refused by the size count). The client may hang up early.
                    self.send_response(200)
                    if mode["answer"] == "big-length":
                        self.send_header("Content-Length", str(65 * MiB))
                    self.end_headers()
                    try:
                        for _ in range(65):
                            self.wfile.write(b" " * MiB)
                    except OSError:
                        pass
                    return
                body = {"/api/v1/nodes": {"items": [{"metadata": {"name": "node-1"}}]},
                        "/api/v1/persistentvolumes": pv_list}.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        url = "--kube-api=https://127.0.0.1:%d" % srv.server_address[1]
        try:
            code, rep, err = self.doctor(url, "--kube-token-file=" + token,
                                         "--kube-ca-file=" + cert)
            self.assertIn(code, (0, 1), err)
            self.assertIn(("pv_without_volume", "pv-api-gone"), self.kinds(rep), rep)
            self.assertEqual(sorted(seen), [("/api/v1/nodes", "Bearer sekrit-token-123"),
                                            ("/api/v1/persistentvolumes",
                                             "Bearer sekrit-token-123")])
            self.assertNotIn("sekrit", json.dumps(rep) + err)
            # A certificate signed by someone else: refused before anything is sent.
            seen.clear()
            code, _, err = self.doctor(url, "--kube-token-file=" + token,
                                       "--kube-ca-file=" + other, expect=2)
            self.assertIn("does not verify", err)
            self.assertEqual(seen, [])
            # A token the server refuses.
            with open(token, "w") as f:
                f.write("wrong")
            code, _, err = self.doctor(url, "--kube-token-file=" + token,
                                       "--kube-ca-file=" + cert, expect=2)
            self.assertIn("HTTP 401", err)
            self.assertNotIn("wrong", err)
            with open(token, "w") as f:
                f.write("sekrit-token-123")
            # The right CA, but the certificate names 127.0.0.1, not localhost.
            seen.clear()
            code, _, err = self.doctor(url.replace("127.0.0.1", "localhost"),
                                       "--kube-token-file=" + token, "--kube-ca-file=" + cert,
                                       expect=2)
            self.assertIn("does not verify", err)
            self.assertIn("localhost", err)
            self.assertEqual(seen, [])
            # Refused by RBAC: the status, its reason and the API server's message.
            mode["answer"] = "forbidden"
            code, _, err = self.doctor(url, "--kube-token-file=" + token,
                                       "--kube-ca-file=" + cert, expect=2)
            self.assertIn("HTTP 403 Forbidden: nodes is forbidden", err)
            # Bodies over 64 MiB, announced or not.
            for mode["answer"] in ("big-length", "big"):
                code, _, err = self.doctor(url, "--kube-token-file=" + token,
                                           "--kube-ca-file=" + cert, expect=2)
                self.assertIn("larger than 64 MiB", err, mode)
            self.assertNotIn("sekrit", err)
            # --kube-api with --pvs: one source only.
            self.doctor(url, "--pvs=" + token, expect=2)
        finally:
            srv.shutdown()
            srv.server_close()

    def test_doctor__every_pool_skips_pools_the_user_may_not_read(self):
        user = "doctor-one-pool"
        pool2 = ceph()["pool2"]
        ceph_cli("ceph", "auth", "get-or-create", "client." + user, "mon", "profile rbd", "osd",
                 "profile rbd pool=" + pool2)
        self.addCleanup(ceph_cli, "ceph", "auth", "rm", "client." + user)
        keyfile = os.path.join(self.tmp, "one-pool.key")
        with open(keyfile, "w") as f:
            f.write(ceph_cli("ceph", "auth", "print-key", "client." + user))
        r = subprocess.run([RBDCSI, "doctor", "--config=" + self.config, "--cluster=" + CLUSTER,
                            "--user=" + user, "--keyfile=" + keyfile, "--rados-namespace=",
                            "--output=json", "--ceph-timeout=20"],
                           capture_output=True, text=True, timeout=120)
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        rep = json.loads(r.stdout)
        self.assertEqual((rep["pools"], rep["skipped_pools"]), (1, 1), rep)
        self.assertTrue(all(f["pool"] in (pool2, "") for f in rep["findings"]), rep)
        # A pool given by name that the user may not read is an error, not "clean".
        r = subprocess.run([RBDCSI, "doctor", "--config=" + self.config, "--cluster=" + CLUSTER,
                            "--user=" + user, "--keyfile=" + keyfile, "--pool=" + self.pool,
                            "--rados-namespace=", "--ceph-timeout=20"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)

    def test_doctor__usage_and_errors(self):
        bad = [
            [],                                                      # no --config
            ["--config=" + self.config],                             # no --cluster
            ["--config=" + self.config, "--cluster=" + CLUSTER],     # no secret
            ["--config=" + self.config, "--cluster=" + CLUSTER, "--user=csi"],  # no keyfile
            ["--output=yaml"],
            ["--key=abc"],                                           # no such flag
            ["--node", "--repair"],
        ]
        for args in bad:
            r = subprocess.run([RBDCSI, "doctor", *args], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr, args)
        # A cluster that is not in the configuration, a pool that does not exist.
        code, _, err = self.doctor("--cluster=nope", expect=2)
        self.assertIn("nope", err)
        code, _, err = self.doctor("--pool=no-such-pool", expect=2)
        # --user/--keyfile: the key read from a file.
        keyfile = os.path.join(self.tmp, "key")
        with open(keyfile, "w") as f:
            f.write(secrets()["userKey"] + "\n")
        r = subprocess.run([RBDCSI, "doctor", "--config=" + self.config, "--cluster=" + CLUSTER,
                            "--user=" + secrets()["userID"], "--keyfile=" + keyfile,
                            "--pool=" + self.pool, "--rados-namespace=nonexistent-ns"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # A wrong key is an error, not "clean".
        with open(keyfile, "w") as f:
            f.write("AQBQdRFkAAAAABAAFakeFakeFakeFakeFakeFakeFA==\n")
        r = subprocess.run([RBDCSI, "doctor", "--config=" + self.config, "--cluster=" + CLUSTER,
                            "--user=" + secrets()["userID"], "--keyfile=" + keyfile,
                            "--pool=" + self.pool, "--ceph-timeout=5"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)


@need_ceph
@need_root
class TestDoctorNodeReal(unittest.TestCase):
    """A volume really staged (rbd-fuse + loop + ext4) is no finding; a stray mount next to it
    is; after unstage nothing is left to find."""

    def test_doctor_node__real_stage_is_clean(self):
        d = Driver(mode="all", name="doctor-node")
        try:
            vol = d.controller.CreateVolume(csi.CreateVolumeRequest(
                name="pvc-doctor-node", capacity_range=csi.CapacityRange(required_bytes=32 * MiB),
                volume_capabilities=[mount_cap()],
                parameters={"clusterID": "test", "pool": ceph()["pool"], "mounter": "fuse"},
                secrets=secrets()), timeout=60).volume
            root = os.path.join(d.dir, "plugins/kubernetes.io/csi/rbdcsi.io")
            staging = os.path.join(root, "c" * 64, "globalmount")
            stray = os.path.join(root, "d" * 64, "globalmount")
            os.makedirs(staging)
            os.makedirs(stray)
            argv = [RBDCSI, "doctor", "--node", "--state-dir=" + os.path.join(d.dir, "state"),
                    "--kubelet-dir=" + d.dir, "--output=json"]
            d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging,
                volume_capability=mount_cap(), volume_context=vol.volume_context,
                secrets=secrets()), timeout=120)
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                rep = json.loads(r.stdout)
                self.assertEqual((rep["states"], rep["findings"]), (1, []))
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", stray],
                               check=True)
                try:
                    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                finally:
                    subprocess.run(["umount", stray], check=True)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertEqual([(f["kind"], f["path"]) for f in json.loads(r.stdout)["findings"]],
                                 [("mount_without_state", stray)])
                self.check_repair_keeps_staged_volume(d, vol)
            finally:
                d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
                    volume_id=vol.volume_id, staging_target_path=staging), timeout=120)
                d.controller.DeleteVolume(csi.DeleteVolumeRequest(
                    volume_id=vol.volume_id, secrets=secrets()), timeout=60)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            self.assertEqual((r.returncode, json.loads(r.stdout)["states"]), (0, 0), r.stderr)
        finally:
            d.stop()


    def check_repair_keeps_staged_volume(self, d, vol):
        """The cluster doctor's --repair leaves a staged volume alone: its attachment to a node
        missing from --nodes stays, because rbd-fuse holds a watch on its image."""
        d.controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id="node-1", volume_capability=mount_cap(),
            secrets=secrets()), timeout=60)
        try:
            secret_dir = os.path.join(d.dir, "secret")
            os.mkdir(secret_dir, 0o700)
            for k, v in secrets().items():
                with open(os.path.join(secret_dir, k), "w") as f:
                    f.write(v)
            nodes = os.path.join(d.dir, "nodes.txt")
            with open(nodes, "w") as f:
                f.write("some-other-node\n")
            r = subprocess.run([RBDCSI, "doctor", "--config=" + os.path.join(d.dir, "config.json"),
                                "--cluster=test", "--secret-dir=" + secret_dir,
                                "--pool=" + ceph()["pool"], "--nodes=" + nodes, "--repair",
                                "--output=json"], capture_output=True, text=True, timeout=120)
            self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
            ours = [f for f in json.loads(r.stdout)["findings"]
                    if f["volume_id"] == vol.volume_id]
            self.assertEqual([(f["kind"], f["repaired"]) for f in ours],
                             [("attachment_to_gone_node", False)], ours)
            self.assertIn("watcher", ours[0]["repair"])
        finally:
            d.controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(
                volume_id=vol.volume_id, node_id="node-1", secrets=secrets()), timeout=60)


class TestDoctorNode(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rbdcsi-doctor-node.")
        self.state = os.path.join(self.tmp, "state")
        self.kubelet = os.path.join(self.tmp, "kubelet")
        self.stage = os.path.join(self.state, "rbdcsi.io", "stage")
        self.root = os.path.join(self.kubelet, "plugins/kubernetes.io/csi/rbdcsi.io")
        os.makedirs(self.stage)
        os.makedirs(self.root)
        self.mounts = []

    def tearDown(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def doctor(self):
        r = subprocess.run([RBDCSI, "doctor", "--node", "--state-dir=" + self.state,
                            "--kubelet-dir=" + self.kubelet, "--output=json"],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr

    def write_state(self, volume_id, staging_path):
        state = {"version": 1, "volume_id": volume_id, "phase": "staged", "mapper": "krbd",
                 "access": "mount", "device": "/dev/rbd-doctor-test-none",
                 "staging_path": staging_path, "fstype": "ext4", "pool": "rbd",
                 "image": "csi-vol-x"}
        name = hashlib.sha256(volume_id.encode()).hexdigest() + ".json"
        path = os.path.join(self.stage, name)
        with open(path, "w") as f:
            json.dump(state, f)
        return path

    def test_doctor_node__empty_is_clean(self):
        code, rep, err = self.doctor()
        self.assertEqual(code, 0, err)
        self.assertEqual(rep["findings"], [])
        # No state directory at all is clean too.
        shutil.rmtree(self.state)
        code, rep, err = self.doctor()
        self.assertEqual((code, rep["findings"]), (0, []), err)

    @need_root
    def test_doctor_node__state_without_mount_and_mount_without_state(self):
        lost = os.path.join(self.root, "a" * 64, "globalmount")
        path = self.write_state("vol-lost", lost)
        stray = os.path.join(self.root, "b" * 64, "globalmount")
        os.makedirs(stray)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", stray], check=True)
        self.mounts.append(stray)
        code, rep, err = self.doctor()
        self.assertEqual(code, 1, err)
        got = sorted((f["kind"], f["path"]) for f in rep["findings"])
        self.assertEqual(got, [("mount_without_state", stray), ("state_without_mount", path)])
        self.assertTrue(os.path.exists(path))  # only reports
        self.assertEqual(rep["states"], 1)


if __name__ == "__main__":
    unittest.main()
