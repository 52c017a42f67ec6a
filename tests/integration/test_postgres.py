# SPDX-License-Identifier: Apache-2.0
"""A stateful application on a published volume: PostgreSQL (from Debian) keeps its data
directory on an rbdcsi volume, commits rows, is killed with SIGKILL, the volume is unstaged and
staged on another node id, and PostgreSQL recovers every committed row."""
import glob
import os
import shutil
import signal
import subprocess
import time
import unittest

from lib import MiB, Driver, csi, mount_cap, need_ceph, need_root, sc_params, secrets

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or [None]
PG_BIN = PG_BIN[0]


def as_postgres(*argv, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                          text=True, timeout=120, **kw)


@need_ceph
@need_root
@unittest.skipUnless(PG_BIN and shutil.which("runuser"), "PostgreSQL is not installed")
class TestPostgres(unittest.TestCase):
    def test_postgres__committed_rows_survive_sigkill_and_node_move(self):
        d1 = Driver(mode="all", nodeid="pg-node-1", name="pg1")
        kdir = d1.dir
        os.chmod(kdir, 0o755)
        d2 = Driver("--kubelet-dir=" + kdir, mode="node", nodeid="pg-node-2", name="pg2")
        cap = mount_cap("ext4")
        vol = d1.controller.CreateVolume(csi.CreateVolumeRequest(
            name="pvc-postgres", capacity_range=csi.CapacityRange(required_bytes=256 * MiB),
            volume_capabilities=[cap], parameters=sc_params(mounter="fuse"),
            secrets=secrets()), timeout=60).volume
        staging = os.path.join(kdir, "pg-staging")
        target = os.path.join(kdir, "pg-target")
        os.makedirs(staging)
        sock = os.path.join(kdir, "pg-sock")
        os.makedirs(sock)
        shutil.chown(sock, "postgres")
        pg = None

        def stage_publish(d):
            d.node.NodeStageVolume(csi.NodeStageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap,
                volume_context=vol.volume_context, secrets=secrets()), timeout=120)
            d.node.NodePublishVolume(csi.NodePublishVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging, target_path=target,
                volume_capability=cap), timeout=60)

        def unpublish_unstage(d):
            d.node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(
                volume_id=vol.volume_id, target_path=target), timeout=60)
            d.node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(
                volume_id=vol.volume_id, staging_target_path=staging), timeout=120)

        def start_pg():
            # The postmaster is our own child (not runuser's), so we reap it ourselves: PID 1
            # here reaps orphans only seconds later, and a zombie's PID in postmaster.pid would
            # make the next start refuse.
            p = subprocess.Popen([PG_BIN + "/postgres",
                                  "-D", os.path.join(target, "pgdata"), "-k", sock,
                                  "-c", "listen_addresses=", "-c", "fsync=on",
                                  "-c", "synchronous_commit=on"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 user="postgres", group="postgres", extra_groups=[],
                                 cwd="/")
            for _ in range(300):
                if as_postgres(PG_BIN + "/pg_isready", "-h", sock).returncode == 0:
                    return p
                time.sleep(0.1)
            p.kill()
            raise RuntimeError("postgres did not start: " + p.stderr.read().decode()[-2000:])

        def psql(sql):
            r = as_postgres(PG_BIN + "/psql", "-h", sock, "-d", "postgres", "-XAtq",
                            "-v", "ON_ERROR_STOP=1", "-c", sql)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.strip()

        try:
            stage_publish(d1)
            os.chmod(target, 0o755)
            pgdata = os.path.join(target, "pgdata")
            os.makedirs(pgdata)
            shutil.chown(pgdata, "postgres")
            r = as_postgres(PG_BIN + "/initdb", "-D", pgdata, "-A", "trust", "--no-sync")
            self.assertEqual(r.returncode, 0, r.stderr)
            pg = start_pg()
            psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            for batch in range(10):
                psql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(%d, %d) g"
                     % (batch * 100, batch * 100 + 99))
            committed = psql("SELECT count(*), sum(id) FROM t")
            # Crash: the postmaster and every backend die at once, no shutdown checkpoint.
            subprocess.run(["pkill", "-KILL", "-u", "postgres"])
            pg.wait(30)
            pg = None
            for _ in range(100):  # backends gone (they may linger as zombies of PID 1)
                if subprocess.run(["pgrep", "-u", "postgres", "-r", "R,S,D"],
                                  capture_output=True).returncode != 0:
                    break
                time.sleep(0.1)
            unpublish_unstage(d1)
            # The pod moves to another node.
            stage_publish(d2)
            pg = start_pg()
            self.assertEqual(psql("SELECT count(*), sum(id) FROM t"), committed)
            self.assertEqual(committed.split("|")[0], "1000")
            pg.send_signal(signal.SIGINT)
            pg.wait(60)
            pg = None
            unpublish_unstage(d2)
        finally:
            if pg:
                pg.kill()
                pg.wait()
            for d in (d1, d2):
                try:
                    unpublish_unstage(d)
                except Exception:
                    pass
            d1.controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=vol.volume_id,
                                                               secrets=secrets()), timeout=60)
            d1.stop()
            d2.stop()


if __name__ == "__main__":
    unittest.main()
