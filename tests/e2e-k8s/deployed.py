#!/usr/bin/python3
"""Kubernetes e2e, second mode (issue 14 items 3 and 4): deploy/ as a user deploys it.

The cluster is the one of e2e.py (etcd, control plane, containerd, kubelet on this machine),
but rbdcsi and its sidecars run in their pods, from the images make image and
images/build.sh built, with the shipped ServiceAccounts and RBAC:

  pass 1  `kustomize build` of an overlay of deploy/kubernetes that only retargets the rbdcsi
          image to the one make image built; the scenario of e2e.py runs through the pods, then
          the restarts under live pods: the controller pod deleted during 20 PVC creations,
          the node plugin pod deleted under a writer on a fuse-mapped volume, a rolling update
          of the DaemonSet to a new image tag under a mounted volume;
  pass 2  the same objects deleted, `helm template deploy/helm/rbdcsi` (image values only)
          applied, and the core of the scenario again.
  At the end: no log of any container of those pods contains "forbidden".

What differs from the shipped rendering, and why (each change is made in deploy_objects()):
  - the ConfigMap's config.json and the StorageClasses' clusterID name the test Ceph (the
    edit deploy/README.md asks every user to make);
  - imagePullPolicy: Never on every container (IfNotPresent would never pull an image that
    is present, but Never makes sure no packet leaves this machine for a registry);
  - the liveness-probe containers are left out, and with them the livenessProbe of the
    containers that point at their port: github.com/kubernetes-csi/livenessprobe is refused
    by the Go module proxy here (403 for every version), so that image cannot be built;
  - node-driver-registrar loses --http-endpoint and its livenessProbe: its image holds the
    e2e's own registrar (tools/registrar; the proxy refuses that module as well), which
    registers the driver with the kubelet and serves no health endpoint.
The test harness makes the machine look like a node of a real cluster, without touching the
manifests:
  - the test Ceph binds the host-only bridge's gateway (10.244.0.1, CEPH_BIND_ADDR): the
    controller pod has its own network namespace, as shipped;
  - the `kubernetes` Service IP (10.0.0.1:443) is DNATed to the API server on 127.0.0.1, as
    kube-proxy would (iptables nat chain RBDCSI-E2E, route_localnet on the bridge only);
  - /var/lib/rbdcsi, the node plugin's state dir (Bidirectional), is made a shared mount, as
    deploy/README.md "Prerequisites" asks of a node.
No packet leaves the machine: the bridge has no uplink, and packets from it are never forwarded
(a DROP in FORWARD for the bridge, whatever ip_forward says).
The snapshot-controller (a cluster add-on, not part of deploy/) runs as a host process, like
the control plane, with the harness's admin credentials.

  deployed.py --bin DIR --images DIR --rbdcsi build/rbdcsi --kustomize PATH --helm PATH \
              --rbdcsi-image build/image/rbdcsi.oci.tar
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import yaml

import e2e
from e2e import E2E, LOGS, NS, NODE, DRIVER, ROOT, Failed, check, log, run, step, wait_for

GW = "10.244.0.1"  # the CNI bridge's gateway (runtime/cni-conflist.sh: 10.244.0.0/24, .1)
BRIDGE = "rbdcsie2e0"
SERVICE_IP = "10.0.0.1"  # first IP of --service-cluster-ip-range: the `kubernetes` Service
CHAIN = "RBDCSI-E2E"
HOST_STATE = "/var/lib/rbdcsi"  # the DaemonSet's state-dir hostPath
# Says that HOST_STATE is ours to unmount and remove (outside E2E, which clean() removes first).
STATE_MARK = "/run/rbdcsi-e2e-deployed.state-dir"
POD_LOGS = e2e.POD_LOGS
IPT = "iptables-legacy"


# --- host setup and cleanup ----------------------------------------------------------------

def net_up():
    """The bridge with its gateway address, before Ceph binds it; the Service DNAT."""
    if not os.path.exists("/sys/class/net/" + BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "replace", GW + "/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def service_nat():
    # Packets from pods to 127.0.0.1 after DNAT are accepted only with route_localnet on the
    # interface they come in on (the bridge); nothing else changes.
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % BRIDGE, "w") as f:
        f.write("1")
    run([IPT, "-w", "-t", "nat", "-N", CHAIN])
    run([IPT, "-w", "-t", "nat", "-A", CHAIN, "-d", SERVICE_IP + "/32", "-p", "tcp",
         "--dport", "443", "-j", "DNAT", "--to-destination",
         "127.0.0.1:%d" % e2e.PORTS["apiserver"]])
    run([IPT, "-w", "-t", "nat", "-I", "PREROUTING", "-i", BRIDGE, "-j", CHAIN])
    # Whatever ip_forward says: nothing from the pods is routed anywhere (they only talk to
    # this host: the Service DNAT above and Ceph on the bridge's address).
    run([IPT, "-w", "-N", CHAIN])
    run([IPT, "-w", "-A", CHAIN, "-j", "DROP"])
    run([IPT, "-w", "-I", "FORWARD", "-i", BRIDGE, "-j", CHAIN])


def nat_clean():
    while run([IPT, "-w", "-t", "nat", "-D", "PREROUTING", "-i", BRIDGE, "-j", CHAIN],
              check=False).returncode == 0:
        pass
    run([IPT, "-w", "-t", "nat", "-F", CHAIN], check=False)
    run([IPT, "-w", "-t", "nat", "-X", CHAIN], check=False)
    while run([IPT, "-w", "-D", "FORWARD", "-i", BRIDGE, "-j", CHAIN],
              check=False).returncode == 0:
        pass
    run([IPT, "-w", "-F", CHAIN], check=False)
    run([IPT, "-w", "-X", CHAIN], check=False)


def state_dir_up():
    if os.path.exists(HOST_STATE):
        raise Failed("%s exists and is not ours (%s does not name it): not touching it" %
                     (HOST_STATE, STATE_MARK))
    with open(STATE_MARK, "w") as f:
        f.write("%s made by tests/e2e-k8s/deployed.py\n" % HOST_STATE)
    os.makedirs(HOST_STATE, mode=0o700)
    run(["mount", "--bind", HOST_STATE, HOST_STATE])
    run(["mount", "--make-rshared", HOST_STATE])


def mapper_cgroups_clean():
    """The empty cgroups rbdcsi-mappers/* the node plugin's rbd-fuse daemons lived in (the
    daemons are gone: e2e.clean() killed them), in every hierarchy."""
    for tree in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", tree, "rbdcsi-mappers")
        if os.path.isdir(top) and not os.path.islink(os.path.join("/sys/fs/cgroup", tree)):
            for d in os.listdir(top):
                if os.path.isdir(os.path.join(top, d)):
                    try:
                        os.rmdir(os.path.join(top, d))
                    except OSError:
                        pass
            try:
                os.rmdir(top)
            except OSError:
                pass


def clean():
    """e2e.clean() (which, with e2e.STATE_DIR pointed at HOST_STATE, also kills the rbd-fuse
    processes serving it and frees its loop devices), then our NAT chain and state dir."""
    e2e.clean()
    nat_clean()
    mapper_cgroups_clean()
    if os.path.exists(STATE_MARK):
        e2e.umount_all(HOST_STATE)
        if os.path.isdir(HOST_STATE) and not e2e.mounts_under(HOST_STATE):
            shutil.rmtree(HOST_STATE, ignore_errors=True)
        if not os.path.exists(HOST_STATE):
            os.unlink(STATE_MARK)


# --- component logs ----------------------------------------------------------------------

class LogKeeper(threading.Thread):
    """Copies the logs of every container in the rbdcsi namespace to LOGS every 2 s (and on
    demand): the kubelet removes them with their pod, and pods are deleted on purpose here."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lock = threading.Lock()

    def sync(self):
        with self.lock:
            if not os.path.isdir(POD_LOGS):
                return
            for d in os.listdir(POD_LOGS):
                if not d.startswith(NS + "_"):
                    continue
                pod = d.split("_")[1]
                base = os.path.join(POD_LOGS, d)
                for c in os.listdir(base):
                    for f in os.listdir(os.path.join(base, c)):
                        if f.endswith(".log"):
                            dst = os.path.join(LOGS, "pod-%s-%s-%s" % (pod, c, f))
                            try:
                                shutil.copyfile(os.path.join(base, c, f), dst)
                            except OSError:
                                pass

    def run(self):
        while True:
            try:
                self.sync()
            except OSError:
                pass
            time.sleep(2)


KEEPER = LogKeeper()


def forbidden_hits():
    KEEPER.sync()
    hits = []
    for f in sorted(os.listdir(LOGS)):
        if not f.startswith("pod-"):
            continue
        for line in open(os.path.join(LOGS, f), errors="replace"):
            if re.search(r"forbidden", line, re.I):
                hits.append("%s: %s" % (f, line.strip()[:300]))
    return hits


# --- rendering and deploying -------------------------------------------------------------

class Deployer:
    def __init__(self, cl, args):
        self.cl = cl
        self.kustomize = args.kustomize
        self.helm = args.helm
        self.name, self.tag = cl.rbdcsi_ref.rsplit(":", 1)
        self.applied = []

    def render_kustomize(self):
        """An overlay of deploy/kubernetes whose only content is the image retarget."""
        d = os.path.join(E2E, "overlay")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                            "kind": "Kustomization",
                            "resources": [os.path.relpath(os.path.join(ROOT, "deploy/kubernetes"),
                                                          d)],
                            "images": [{"name": "localhost/rbdcsi", "newName": self.name,
                                        "newTag": self.tag}]}, f)
        p = run([self.kustomize, "build", d])
        return [o for o in yaml.safe_load_all(p.stdout) if o]

    def render_helm(self):
        h = os.path.join(E2E, "helm")
        env = dict(os.environ, HELM_CONFIG_HOME=h + "/config", HELM_CACHE_HOME=h + "/cache",
                   HELM_DATA_HOME=h + "/data")
        p = run([self.helm, "template", "rbdcsi", os.path.join(ROOT, "deploy/helm/rbdcsi"),
                 "--namespace", NS, "--set", "image.repository=" + self.name,
                 "--set", "image.tag=" + self.tag], env=env)
        return [o for o in yaml.safe_load_all(p.stdout) if o]

    def adapt(self, objs):
        """The changes listed in the module docstring, and nothing else."""
        ceph = self.cl.ceph
        for o in objs:
            if o["kind"] == "ConfigMap" and "config.json" in o.get("data", {}):
                conf = json.loads(o["data"]["config.json"])
                conf[0]["clusterID"] = ceph["RBDCSI_TEST_FSID"]
                conf[0]["monitors"] = [ceph["RBDCSI_TEST_MONITORS"]]
                o["data"]["config.json"] = json.dumps(conf, indent=2)
            if o["kind"] == "StorageClass" and "clusterID" in o.get("parameters", {}):
                o["parameters"]["clusterID"] = ceph["RBDCSI_TEST_FSID"]
            spec = o.get("spec", {}).get("template", {}).get("spec")
            if not spec:
                continue
            probe_ports = set()
            for c in spec["containers"]:
                if c["name"] == "liveness-probe":
                    for a in c.get("args", []):
                        if a.startswith("--http-endpoint="):
                            probe_ports.add(int(a.rsplit(":", 1)[1]))
            spec["containers"] = [c for c in spec["containers"] if c["name"] != "liveness-probe"]
            for c in spec["containers"]:
                if c["name"] == "node-driver-registrar":
                    # The e2e's registrar (tools/registrar: the proxy refuses the upstream
                    # module too) does the registration only: no health endpoint to probe.
                    c["args"] = [a for a in c["args"] if not a.startswith("--http-endpoint")]
                    c.pop("livenessProbe", None)
            for c in spec["containers"] + spec.get("initContainers", []):
                c["imagePullPolicy"] = "Never"
                port = c.get("livenessProbe", {}).get("httpGet", {}).get("port")
                named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
                if named.get(port, port) in probe_ports:
                    del c["livenessProbe"]
            if probe_ports:
                log("%s %s: liveness-probe container (and the probes on its port %s) left out: "
                    "its module is refused by the Go module proxy here" %
                    (o["kind"], o["metadata"]["name"], sorted(probe_ports)))
        return objs

    def deploy(self, how):
        objs = self.adapt(self.render_kustomize() if how == "kustomize" else self.render_helm())
        # The namespace first (helm template renders none), then everything in one apply.
        self.cl.kubectl("create", "namespace", NS, check=False)
        self.cl.apply(objs)
        self.cl.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": {"name": "rbdcsi-ceph-user", "namespace": NS},
                       "stringData": {"userID": self.cl.ceph["RBDCSI_TEST_USER"],
                                      "userKey": self.cl.ceph["RBDCSI_TEST_KEY"]}})
        self.applied = [o for o in objs if o["kind"] != "Namespace"]
        self.deployment = [o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"][0]
        self.daemonset = [o["metadata"]["name"] for o in objs if o["kind"] == "DaemonSet"][0]
        self.rollout()

        def registered():
            n = self.cl.get("csinode", NODE)
            return any(d["name"] == DRIVER for d in n["spec"].get("drivers") or [])
        wait_for("CSINode %s to list %s" % (NODE, DRIVER), registered, timeout=120, interval=1)
        # A provisioner leader: the first PVC must not wait for an election.
        wait_for("a csi-provisioner leader", lambda: self.leader("csi-provisioner"),
                 timeout=120, interval=1)
        check("%s: deploy/ applied with its ServiceAccounts and RBAC; the controller and node "
              "pods run and the driver registers" % how, True)

    def rollout(self, timeout=180):
        self.cl.kubectl("-n", NS, "rollout", "status", "deployment/" + self.deployment,
                        "--timeout=%ds" % timeout, timeout=timeout + 20)
        self.cl.kubectl("-n", NS, "rollout", "status", "daemonset/" + self.daemonset,
                        "--timeout=%ds" % timeout, timeout=timeout + 20)

    def leader(self, sidecar):
        """The pod holding the Lease of that sidecar (they are named after the driver)."""
        for lease in self.cl.get("-n", NS, "lease")["items"]:
            holder = lease["spec"].get("holderIdentity") or ""
            name = lease["metadata"]["name"]
            # csi-provisioner's Lease is the driver name; the others carry their own name.
            if holder and (name == DRIVER.replace(".", "-") if sidecar == "csi-provisioner"
                           else sidecar.split("-")[-1] in name):
                return holder.split("_")[0]  # hostname (= pod name), then a suffix
        return None

    def undeploy(self):
        """Workloads first, and their pods gone, then the RBAC and the rest: a pod still
        terminating after its ClusterRoleBinding went would log Forbidden (a harness artefact,
        not a defect of the manifests)."""
        KEEPER.sync()
        work = [o for o in self.applied if o["kind"] in ("Deployment", "DaemonSet")]
        rest = [o for o in self.applied if o not in work]
        for objs in (work, rest):
            self.cl.kubectl("delete", "--ignore-not-found", "--wait=true", "--cascade=foreground",
                            "--timeout=180s", "-f", "-",
                            input=json.dumps({"apiVersion": "v1", "kind": "List",
                                              "items": objs}), timeout=200)
            if objs is work:
                wait_for("the rbdcsi pods to go", lambda: not self.cl.get(
                    "-n", NS, "pod")["items"], timeout=180, interval=1)
                KEEPER.sync()

    def pods(self, component):
        return [p for p in self.cl.get("-n", NS, "pod", "-l",
                                       "app.kubernetes.io/component=" + component)["items"]
                if not p["metadata"].get("deletionTimestamp")]


# --- restarts under live pods ------------------------------------------------------------

class Restarts:
    def __init__(self, cl, dep, sc):
        self.cl, self.dep, self.sc = cl, dep, sc

    def pool_state(self):
        pool = self.cl.ceph["RBDCSI_TEST_POOL"]
        images = set(self.cl.ceph_cmd("rbd", "-p", pool, "ls").split())
        keys = set(self.cl.ceph_cmd("rados", "-p", pool, "listomapkeys",
                                    "rbdcsi.volumes").split()) \
            if "rbdcsi.volumes" in self.cl.ceph_cmd("rados", "-p", pool, "ls").split() else set()
        objs = {o for o in self.cl.ceph_cmd("rados", "-p", pool, "ls").split()
                if o.startswith("rbdcsi.volume.")}
        return images, keys, objs

    # 4b
    def controller_killed_during_creates(self, n=20):
        before = self.pool_state()
        # Half the claims, the provisioner leader's pod deleted at once (while those are being
        # provisioned), then the other half while no leader runs yet.
        names = ["burst-%02d" % i for i in range(n)]
        self.cl.apply([e2e.pvc(x, "rbdcsi-ext4") for x in names[:n // 2]])
        leader = self.dep.leader("csi-provisioner")
        made = len([p for p in self.cl.get("pv")["items"]
                    if p["spec"]["claimRef"]["name"].startswith("burst-")])
        self.cl.kubectl("-n", NS, "delete", "pod", leader, "--wait=false")
        log("deleted the provisioner leader %s with %d of %d PVs made" % (leader, made, n))
        self.cl.apply([e2e.pvc(x, "rbdcsi-ext4") for x in names[n // 2:]])
        for i in range(n):
            self.sc.bound("burst-%02d" % i, timeout=300)
        self.dep.rollout()
        after = self.pool_state()
        pvs = [p for p in self.cl.get("pv")["items"]
               if p["spec"]["claimRef"]["name"].startswith("burst-")]
        want = {p["spec"]["csi"]["volumeAttributes"].get("imageName") for p in pvs}
        new = [a - b for a, b in zip(after, before)]
        check("the controller pod (provisioner leader, %d of %d PVs made) is deleted during %d "
              "PVC creations: all %d Bound, the pool holds exactly %d new images (those of the "
              "PVs) and %d new journal entries and volume objects" % (made, n, n, n, n, n),
              len(pvs) == n and new[0] == want and len(new[1]) == n and len(new[2]) == n and
              not [b - a for a, b in zip(after, before) if b - a],
              "PVs %d, new images %d (%s), new journal keys %d, new volume objects %d" % (
                  len(pvs), len(new[0]), "match" if new[0] == want else "differ from the PVs",
                  len(new[1]), len(new[2])))
        self.cl.kubectl("-n", "default", "delete", "pvc", *["burst-%02d" % i for i in range(n)],
                        "--wait=true", "--timeout=240s", timeout=260)
        wait_for("the burst PVs deleted", lambda: not [
            p for p in self.cl.get("pv")["items"]
            if p["spec"]["claimRef"]["name"].startswith("burst-")], timeout=300, interval=1)
        gone = self.pool_state()
        check("the %d burst PVCs are deleted: the pool is back to what it held before" % n,
              gone == before, "images %d, keys %d, objects %d" % tuple(len(x) for x in gone))

    def writer(self, name, claim, blocks):
        """A pod appending `blocks` random 64 KiB blocks to /data/w, each fsynced (sync FILE),
        keeping a copy in /tmp; it exits non-zero at the first failed write or sync, and prints
        the checksum of what it wrote."""
        cmd = ("i=0; : > /tmp/w; while [ $i -lt %d ]; do "
               "dd if=/dev/urandom of=/tmp/b bs=65536 count=1 2>/dev/null || exit 2; "
               "cat /tmp/b >> /tmp/w; cat /tmp/b >> /data/w || { echo WRITE-ERROR $i; exit 3; }; "
               "sync /data/w || { echo SYNC-ERROR $i; exit 4; }; "
               "echo $i > /data/progress; i=$((i+1)); sleep 0.05; done; "
               "echo DONE $(sha256sum < /tmp/w) $(wc -c < /tmp/w)" % blocks)
        self.cl.apply(e2e.pod(name, claim, cmd))

    def progress(self, name):
        try:
            return int(self.sc.exec(name, "cat", "/data/progress", timeout=20).strip() or 0)
        except (Failed, ValueError, subprocess.TimeoutExpired):
            return -1

    def finished(self, name, timeout=600):
        def done():
            st = self.cl.get("-n", "default", "pod", name)["status"]
            return st.get("phase") if st.get("phase") in ("Succeeded", "Failed") else None
        phase = wait_for("pod %s to finish" % name, done, timeout=timeout, interval=1)
        out = self.sc.k("logs", name, check=False).stdout
        m = re.search(r"DONE ([0-9a-f]{64}) -? *(\d+)", out)
        return phase, out.strip()[-300:], (m.group(1), int(m.group(2))) if m else None

    def stats(self, pv, podname):
        """NodeGetVolumeStats through the node plugin's socket, for the pod's publish path."""
        sys.path.insert(0, os.path.join(ROOT, "build", "py"))
        import grpc
        import csi_pb2 as csi
        import csi_pb2_grpc as csi_grpc
        uid = self.cl.get("-n", "default", "pod", podname)["metadata"]["uid"]
        handle = self.cl.get("pv", pv)["spec"]["csi"]["volumeHandle"]
        target = os.path.join(e2e.KUBELET_DIR, "pods", uid, "volumes", "kubernetes.io~csi", pv,
                              "mount")
        with grpc.insecure_channel("unix://" + e2e.NODE_SOCK) as ch:
            st = csi_grpc.NodeStub(ch).NodeGetVolumeStats(
                csi.NodeGetVolumeStatsRequest(volume_id=handle, volume_path=target), timeout=30)
        used = {u.unit: u.used for u in st.usage}.get(csi.VolumeUsage.BYTES, 0)
        return (not st.volume_condition.abnormal and used > 0,
                "used %d, abnormal %s %s" % (used, st.volume_condition.abnormal,
                                             st.volume_condition.message))

    def fuse_pids(self):
        return sorted(e2e.processes_naming(HOST_STATE, comm="rbd-fuse"))

    # 4a
    def node_plugin_killed_under_writer(self):
        self.cl.apply(e2e.pvc("live", "rbdcsi-ext4"))
        pv = self.sc.bound("live")
        self.writer("live-writer", "live", 250)
        self.sc.k("wait", "--for=condition=Ready", "pod/live-writer", "--timeout=240s",
                  timeout=260)
        wait_for("the writer under way", lambda: self.progress("live-writer") >= 20,
                 timeout=120, interval=1)
        fuse = self.fuse_pids()
        old = self.dep.pods("node")[0]["metadata"]["name"]
        at = self.progress("live-writer")
        log("deleting node plugin pod %s at block %d; rbd-fuse pids %s" % (old, at, fuse))
        KEEPER.sync()
        self.cl.kubectl("-n", NS, "delete", "pod", old, "--wait=true", "--timeout=120s")
        check("the node plugin pod is deleted under a writer: its rbd-fuse process lives on",
              fuse and self.fuse_pids() == fuse, "before %s, after %s" % (fuse, self.fuse_pids()))
        self.dep.rollout()
        wait_for("CSINode lists the driver again", lambda: any(
            d["name"] == DRIVER for d in self.cl.get("csinode", NODE)["spec"].get("drivers") or
            []), timeout=120, interval=1)
        ok, detail = wait_for("NodeGetVolumeStats from the new plugin", lambda: (
            lambda r: r if r[0] else None)(self.stats(pv, "live-writer")), timeout=60,
            interval=2)
        check("the new node plugin adopts the mapping: NodeGetVolumeStats healthy, the writer "
              "still writing (block %d -> %d)" % (at, self.progress("live-writer")), ok, detail)
        phase, out, done = self.finished("live-writer")
        check("the writer saw no I/O error across the restart and finished", phase ==
              "Succeeded" and done, out)
        self.sc.delete_pod("live-writer", pv)  # unstage by the new plugin: nothing left
        got = self.sc.run_pod("live-reader", "live", "sha256sum < /data/w; wc -c < /data/w")
        sums = re.findall(r"[0-9a-f]{64}", got)
        size = [int(x) for x in re.findall(r"^\s*(\d+)\s*$", got, re.M)]
        check("every byte written is there (%d bytes, sha256 of the writer's copy)" % done[1],
              sums == [done[0]] and size == [done[1]], got.strip())
        self.sc.delete_pod("live-reader", pv)

    # 4c
    def rolling_update(self):
        self.cl.apply(e2e.pvc("roll", "rbdcsi-ext4"))
        pv = self.sc.bound("roll")
        self.writer("roll-writer", "roll", 200)
        self.sc.k("wait", "--for=condition=Ready", "pod/roll-writer", "--timeout=240s",
                  timeout=260)
        wait_for("the writer under way", lambda: self.progress("roll-writer") >= 20,
                 timeout=120, interval=1)
        new_tag = self.dep.tag + "-roll"
        e2e.runtime("rt_ctr images tag --force %s:%s %s:%s" % (
            self.dep.name, self.dep.tag, self.dep.name, new_tag))
        old = self.dep.pods("node")[0]["metadata"]["name"]
        ds = self.cl.get("-n", NS, "daemonset", self.dep.daemonset)
        i = [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]].index("rbdcsi")
        self.cl.kubectl("-n", NS, "patch", "daemonset", self.dep.daemonset, "--type=json",
                        "-p", json.dumps([{"op": "replace", "path":
                                           "/spec/template/spec/containers/%d/image" % i,
                                           "value": "%s:%s" % (self.dep.name, new_tag)}]))
        KEEPER.sync()
        self.dep.rollout()
        new = self.dep.pods("node")
        check("the DaemonSet rolls to the new tag (%s -> %s)" % (old, new[0]["metadata"]["name"]),
              len(new) == 1 and new[0]["metadata"]["name"] != old and
              new[0]["spec"]["containers"][i]["image"].endswith(":" + new_tag), "")
        phase, out, done = self.finished("roll-writer")
        check("the writer keeps writing across the rolling update, without an I/O error",
              phase == "Succeeded" and done, out)
        self.sc.delete_pod("roll-writer", pv)
        got = self.sc.run_pod("roll-reader", "roll", "sha256sum < /data/w; wc -c < /data/w")
        check("after the rolling update every byte written is there",
              re.findall(r"[0-9a-f]{64}", got) == [done[0]], got.strip())
        self.sc.delete_pod("roll-reader", pv)


# --- main --------------------------------------------------------------------------------

def py_stubs():
    out = os.path.join(ROOT, "build", "py")
    if os.path.exists(os.path.join(out, "csi_pb2_grpc.py")):
        return
    os.makedirs(out, exist_ok=True)
    run(["/usr/bin/python3", "-m", "grpc_tools.protoc", "-I" + os.path.join(ROOT, "build/proto"),
         "-I/usr/include", "--python_out=" + out, "--grpc_python_out=" + out,
         os.path.join(ROOT, "build/proto/csi.proto")])


def main():
    ap = argparse.ArgumentParser()
    for a in ("--bin", "--images", "--rbdcsi", "--kustomize", "--helm", "--rbdcsi-image"):
        ap.add_argument(a)
    ap.add_argument("--clean", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated: kustomize,restarts,helm; or "
                    "one restart alone: burst, nodekill, roll")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("deployed: must run as root")
    e2e.STATE_DIR = HOST_STATE
    clean()
    if args.clean:
        return 0
    if os.path.exists(e2e.KUBELET_DIR) and os.listdir(e2e.KUBELET_DIR):
        sys.exit("deployed: %s exists and is not ours" % e2e.KUBELET_DIR)
    os.makedirs(E2E, mode=0o700, exist_ok=True)
    os.makedirs(e2e.RUN, mode=0o700, exist_ok=True)
    os.makedirs(LOGS, exist_ok=True)
    only = set(filter(None, args.only.split(","))) or {"kustomize", "restarts", "helm"}
    py_stubs()
    os.environ["CEPH_BIND_ADDR"] = GW
    cl = e2e.Cluster(args)
    dep = Deployer(cl, args)
    phases = [("network", net_up), ("ceph", cl.ceph_up), ("certs", e2e.certs),
              ("control plane", cl.control_plane), ("service nat", service_nat),
              ("state dir", state_dir_up), ("node (containerd, images, kubelet)", cl.node),
              ("snapshot CRDs and controller", lambda: snapshot_support(cl))]
    ok = True
    for name, fn in phases:
        t = time.time()
        try:
            fn()
        except Exception as ex:  # noqa: BLE001
            print("FAIL  bring-up: %s: %s" % (name, ex), flush=True)
            e2e.RESULTS.append(("bring-up " + name, False))
            ok = False
            break
        log("phase %s: %.1f s" % (name, time.time() - t))
    KEEPER.start()
    if ok:
        sc = e2e.Scenario(cl)
        r = Restarts(cl, dep, sc)
        if only & {"kustomize", "restarts", "burst", "nodekill", "roll"}:
            step(lambda: dep.deploy("kustomize"), "deploy: kustomize")
            if not e2e.RESULTS[-1][1]:
                ok = False
        for key, fn, name in (
                ("burst", r.controller_killed_during_creates, "controller deleted in a burst"),
                ("nodekill", r.node_plugin_killed_under_writer, "node plugin deleted under I/O"),
                ("roll", r.rolling_update, "rolling update of the DaemonSet")):
            if ok and only & {"restarts", key}:
                step(fn, name)
        if ok and "kustomize" in only:
            for fn, name in ((sc.step_filesystem, "filesystem volume"),
                             (sc.step_block, "block volume"), (sc.step_expand, "expansion"),
                             (sc.step_snapshot, "snapshot, restore, clone")):
                step(fn, name)
        if ok and only & {"kustomize", "restarts"}:
            step(sc.step_teardown, "teardown (kustomize)")
            step(dep.undeploy, "undeploy (kustomize)")
        if ok and "helm" in only:
            sc = e2e.Scenario(cl)
            step(lambda: dep.deploy("helm"), "deploy: helm template")
            if e2e.RESULTS[-1][1]:
                step(sc.step_filesystem, "filesystem volume (helm)")
                step(sc.step_snapshot, "snapshot, restore, clone (helm)")
                step(sc.step_teardown, "teardown (helm)")
        hits = forbidden_hits()
        try:
            check("no log of any container of the rbdcsi pods says 'forbidden' (%d logs)" %
                  len([f for f in os.listdir(LOGS) if f.startswith("pod-")]), not hits,
                  "\n  ".join(hits[:20]))
        except Failed:
            pass
    passed = sum(1 for _, x in e2e.RESULTS if x)
    failed = sum(1 for _, x in e2e.RESULTS if not x)
    if failed:
        e2e.dump_logs()
    if args.keep:
        log("--keep: leaving everything running; clean with: %s --clean" % sys.argv[0])
    else:
        t = time.time()
        clean()
        log("teardown: %.1f s" % (time.time() - t))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


def snapshot_support(cl):
    crd_dir = os.path.join(cl.bin, "crd")
    for f in sorted(os.listdir(crd_dir)):
        cl.kubectl("apply", "-f", os.path.join(crd_dir, f))
    for crd in ("volumesnapshotclasses", "volumesnapshotcontents", "volumesnapshots"):
        cl.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                   "crd/%s.snapshot.storage.k8s.io" % crd)
    # deploy/'s csi-snapshotter runs with the CSIVolumeGroupSnapshot feature gate, which needs
    # the group snapshot CRDs (deploy/README's prerequisites): without them its informers never
    # sync and no VolumeSnapshot is ever cut.
    for f in e2e.group_snapshot_crds(crd_dir):
        cl.kubectl("apply", "-f", f)
    for crd in ("volumegroupsnapshotclasses", "volumegroupsnapshotcontents",
                "volumegroupsnapshots"):
        cl.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                   "crd/%s.groupsnapshot.storage.k8s.io" % crd)
    e2e.start("snapshot-controller", [cl.b("snapshot-controller"), "--kubeconfig",
                                      e2e.KUBECONFIG, "--leader-election=false",
                                      "--http-endpoint=127.0.0.1:18095",
                                      "--feature-gates=CSIVolumeGroupSnapshot=true"])


if __name__ == "__main__":
    sys.exit(main())
