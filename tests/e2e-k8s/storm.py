#!/usr/bin/python3
"""make bench-k8s (issue 18): PVC storms and pod start storms on the e2e's real Kubernetes.

Run through tests/e2e-k8s/bench.sh, which prepares everything as run.sh does (packages, the
Go binaries, the images) and passes the same paths here:

  storm.py --bin DIR --images DIR --rbdcsi build/rbdcsi --kustomize PATH \\
           --rbdcsi-image TAR [--pvcs 100,500] [--pods 10,25] [--json build/bench.json]

The cluster is the one tests/e2e-k8s/e2e.py brings up (its Cluster class and its phases: Ceph,
certificates, control plane, containerd + kubelet, the CSI sidecars and rbdcsi with the
arguments deploy/kubernetes gives them). What the storms read from the driver is kept in
DriverProbe below (its processes, its logs, its metrics): when the e2e runs the shipped pods
(issue 14), only that class changes.

PVC storm (per size N): N PVCs created at once (parallel API clients), a watch timestamps each
PVC's creation and the moment it is Bound; per-PVC p50/p99; the driver's CreateVolume durations
(its own "finished" log lines) against the per-PVC time, the provisioner's CreateVolume call
(csi_sidecar_operations_seconds) and its work queue, the API server's requests in the window
(apiserver_request_duration_seconds); controller RSS and CPU seconds; errors (calls not OK,
PVCs not Bound, ProvisioningFailed events). Then all deleted: time until the pool is empty.

Pod storm (per size M): M PVCs (Bound first, not timed), then M pods at once, each on its own
PVC, on the one node; time to Running p50/p99 (watch), NodeStageVolume/NodePublishVolume
p50/p99 (node plugin log), node plugin RSS with M volumes staged (and the rbd-fuse mappers'),
then all pods deleted: time until no mapping (mount, loop device, rbd-fuse) is left.

Figures are printed and written to the JSON (k8s_pvc_storm, k8s_pod_storm, by size); nothing
is asserted on time. The exit status says whether every storm ran with 0 errors and left
nothing behind.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (the cluster and its helpers)

NSP = "default"
SC = "rbdcsi-ext4"


def log(msg):
    e2e.log("storm: " + msg)


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return round(v[k - 1], 3)


def dist(v):
    return {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99),
            "mean": round(sum(v) / len(v), 3) if v else None, "max": pct(v, 100)}


# --- what the storms read from the driver -------------------------------------------------

class DriverProbe:
    """The driver's processes, logs and sidecar metrics in the host-process e2e."""

    @staticmethod
    def pid(name):
        with open(os.path.join(e2e.PIDS, name + ".pid")) as f:
            return int(f.read().split()[0])

    @classmethod
    def proc(cls, name):
        """RSS, peak RSS (kB) and CPU seconds of a process we started."""
        pid = cls.pid(name)
        st = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    st[k] = int(v.split()[0])
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return {"rss_kb": st.get("VmRSS"), "hwm_kb": st.get("VmHWM"),
                "threads": st.get("Threads"), "cpu_s": round(cpu, 2)}

    @staticmethod
    def log_path(name):
        return os.path.join(e2e.LOGS, name + ".log")

    @classmethod
    def log_offset(cls, name):
        try:
            return os.path.getsize(cls.log_path(name))
        except OSError:
            return 0

    @classmethod
    def calls(cls, name, since):
        """The "finished" lines of the driver's log after offset since:
        [(method, code, duration_s)]."""
        out = []
        with open(cls.log_path(name), "rb") as f:
            f.seek(since)
            for raw in f:
                line = raw.decode(errors="replace")
                if 'msg="finished"' not in line and "msg=finished" not in line:
                    continue
                m = re.search(r"\bmethod=(\w+)", line)
                c = re.search(r"\bcode=(\w+)", line)
                d = re.search(r"\bduration_ms=([0-9.]+)", line)
                if m and c and d:
                    out.append((m.group(1), c.group(1), float(d.group(1)) / 1000.0))
        return out

    @classmethod
    def sidecar_metrics_url(cls, name):
        """http://127.0.0.1:PORT/metrics of a sidecar (its --http-endpoint or
        --metrics-address, remapped to loopback by e2e.py)."""
        with open("/proc/%d/cmdline" % cls.pid(name), "rb") as f:
            argv = f.read().decode().split("\0")
        for a in argv:
            flag, _, val = a.partition("=")
            if flag in ("--http-endpoint", "--metrics-address") and val:
                return "http://%s/metrics" % val
        return None

    @staticmethod
    def scrape(url):
        if not url:
            return ""
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read().decode()
        except OSError:
            return ""


def metric_sum(text, metric, **labels):
    """Sum of the samples of `metric` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        m = re.match(r"^(\w+)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != metric:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            try:
                total += float(m.group(3))
            except ValueError:
                pass
    return total


def hist_delta(before, after, metric, **labels):
    """(count, sum) of a histogram between two scrapes."""
    c = metric_sum(after, metric + "_count", **labels) - metric_sum(before, metric + "_count",
                                                                    **labels)
    s = metric_sum(after, metric + "_sum", **labels) - metric_sum(before, metric + "_sum",
                                                                  **labels)
    return c, s


# --- watching -----------------------------------------------------------------------------

class Watch(threading.Thread):
    """kubectl get KIND -w: the local time each object was first seen, and the first time
    done(obj) held for it."""

    def __init__(self, cl, kind, prefix, done):
        super().__init__(daemon=True)
        self.prefix, self.done = prefix, done
        self.seen, self.reached, self.last = {}, {}, {}
        self.p = subprocess.Popen(
            [cl.b("kubectl"), "--kubeconfig", e2e.KUBECONFIG, "-n", NSP, "get", kind, "-w",
             "--output-watch-events", "-o", "json", "--request-timeout=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run(self):
        dec = json.JSONDecoder()
        buf = ""
        for chunk in iter(lambda: self.p.stdout.read1(65536) if hasattr(self.p.stdout, "read1")
                          else self.p.stdout.readline(), ""):
            buf += chunk
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    ev, end = dec.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                self.event(ev, time.time())

    def event(self, ev, t):
        obj = ev.get("object", {})
        name = obj.get("metadata", {}).get("name", "")
        if not name.startswith(self.prefix):
            return
        self.seen.setdefault(name, t)
        self.last[name] = obj
        if name not in self.reached and ev.get("type") != "DELETED" and self.done(obj):
            self.reached[name] = t

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def pod_running(obj):
    st = obj.get("status", {})
    return st.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", []))


# --- the storms ---------------------------------------------------------------------------

class Storms:
    def __init__(self, cl, errors):
        self.cl = cl
        self.errors = errors

    def create_all(self, objs, clients=8):
        """Creates objs through `clients` parallel kubectl processes (a burst, as a
        StatefulSet controller makes one)."""
        chunks = [objs[i::clients] for i in range(clients)]

        def one(chunk):
            if chunk:
                self.cl.kubectl("create", "-f", "-", timeout=600, input=json.dumps(
                    {"apiVersion": "v1", "kind": "List", "items": chunk}))
        with ThreadPoolExecutor(clients) as ex:
            list(ex.map(one, chunks))

    def images(self):
        out = self.cl.ceph_cmd("rbd", "ls", "-p", self.cl.ceph.get("RBDCSI_TEST_POOL", "rbd"))
        return [line for line in out.split() if line]

    def delete_and_wait_pool(self, prefix, n, images_before, timeout):
        t0 = time.time()
        self.cl.kubectl("-n", NSP, "delete", "pvc", "-l", "storm=" + prefix, "--wait=false",
                        timeout=600)

        def empty():
            return len(self.images()) <= images_before and not [
                pv for pv in self.cl.get("pv")["items"]
                if pv["spec"].get("claimRef", {}).get("name", "").startswith(prefix + "-")]
        e2e.wait_for("the pool to be empty again after %d PVCs" % n, empty, timeout=timeout,
                     interval=1)
        return round(time.time() - t0, 2)

    def pvc_storm(self, n):
        prefix = "storm-%d" % n
        images_before = len(self.images())
        off = DriverProbe.log_offset("rbdcsi-controller")
        prov_url = DriverProbe.sidecar_metrics_url("csi-provisioner")
        prov0, api0 = DriverProbe.scrape(prov_url), self.api_metrics()
        ctl0 = DriverProbe.proc("rbdcsi-controller")
        w = Watch(self.cl, "pvc", prefix + "-",
                  lambda o: o.get("status", {}).get("phase") == "Bound")
        w.start()
        time.sleep(1)
        objs = []
        for i in range(n):
            o = e2e.pvc(prefix + "-%04d" % i, SC, size="1Gi")
            o["metadata"]["labels"] = {"storm": prefix}
            objs.append(o)
        log("PVC storm: creating %d PVCs at once" % n)
        t0 = time.time()
        self.create_all(objs)
        t_created = time.time() - t0
        try:
            e2e.wait_for("%d PVCs Bound" % n, lambda: len(w.reached) >= n,
                         timeout=max(300, n * 2), interval=0.5)
        except e2e.Failed as e:
            self.errors.append(str(e))
        t_all = max(w.reached.values()) - t0 if w.reached else None
        w.stop()
        ctl1 = DriverProbe.proc("rbdcsi-controller")
        prov1, api1 = DriverProbe.scrape(prov_url), self.api_metrics()
        per_pvc = [w.reached[k] - w.seen[k] for k in w.reached if k in w.seen]
        calls = DriverProbe.calls("rbdcsi-controller", off)
        cv = [d for m, c, d in calls if m == "CreateVolume" and c == "OK"]
        bad = [(m, c) for m, c, d in calls if c != "OK"]
        pc, ps = hist_delta(prov0, prov1, "csi_sidecar_operations_seconds",
                            method_name="/csi.v1.Controller/CreateVolume")
        qc, qs = hist_delta(prov0, prov1, "workqueue_queue_duration_seconds", name="claims")
        ac, asum = api1[0] - api0[0], api1[1] - api0[1]
        failed_events = self.events_count("ProvisioningFailed")
        mean_pvc = sum(per_pvc) / len(per_pvc) if per_pvc else None
        mean_drv = sum(cv) / len(cv) if cv else None
        res = {
            "n": n, "created_s": round(t_created, 2),
            "all_bound_s": round(t_all, 2) if t_all else None,
            "bound": len(w.reached), "per_pvc_s": dist(per_pvc),
            "driver_create_volume_s": dist(cv),
            "provisioner_create_volume_call": {
                "n": int(pc), "mean_s": round(ps / pc, 3) if pc else None},
            "provisioner_claims_queue_wait": {
                "n": int(qc), "mean_s": round(qs / qc, 3) if qc else None},
            "apiserver_requests": {"n": int(ac), "mean_s": round(asum / ac, 4) if ac else None,
                                   "sum_s": round(asum, 2)},
            "driver_share": round(mean_drv / mean_pvc, 3) if mean_drv and mean_pvc else None,
            "controller": {"rss_kb": ctl1["rss_kb"], "hwm_kb": ctl1["hwm_kb"],
                           "threads": ctl1["threads"],
                           "cpu_s": round(ctl1["cpu_s"] - ctl0["cpu_s"], 2)},
            "errors": len(bad) + (n - len(w.reached)) + failed_events,
            "error_detail": {"calls_not_ok": bad[:20], "not_bound": n - len(w.reached),
                             "provisioning_failed_events": failed_events},
        }
        log("PVC storm %d: all Bound in %s s, per PVC p50 %s / p99 %s s; driver CreateVolume "
            "p50 %s s (share %s); provisioner call mean %s s, queue wait mean %s s; API %d "
            "requests, mean %s s; controller RSS %.1f MiB, CPU %s s; errors %d" % (
                n, res["all_bound_s"], res["per_pvc_s"]["p50"], res["per_pvc_s"]["p99"],
                res["driver_create_volume_s"]["p50"], res["driver_share"],
                res["provisioner_create_volume_call"]["mean_s"],
                res["provisioner_claims_queue_wait"]["mean_s"], ac,
                res["apiserver_requests"]["mean_s"], ctl1["rss_kb"] / 1024.0,
                res["controller"]["cpu_s"], res["errors"]))
        off = DriverProbe.log_offset("rbdcsi-controller")
        try:
            res["delete_until_pool_empty_s"] = self.delete_and_wait_pool(
                prefix, n, images_before, timeout=max(300, n * 2))
        except e2e.Failed as e:
            self.errors.append(str(e))
            res["delete_until_pool_empty_s"] = None
        dcalls = DriverProbe.calls("rbdcsi-controller", off)
        res["driver_delete_volume_s"] = dist(
            [d for m, c, d in dcalls if m == "DeleteVolume" and c == "OK"])
        dbad = [(m, c) for m, c, d in dcalls if c != "OK"]
        res["errors"] += len(dbad)
        res["error_detail"]["delete_calls_not_ok"] = dbad[:20]
        log("PVC storm %d: all deleted, pool empty after %s s" % (
            n, res["delete_until_pool_empty_s"]))
        if res["errors"]:
            self.errors.append("PVC storm %d: %d errors: %s" % (n, res["errors"],
                                                                 res["error_detail"]))
        return res

    def pod_storm(self, m):
        prefix = "podstorm-%d" % m
        images_before = len(self.images())
        claims = []
        for i in range(m):
            o = e2e.pvc(prefix + "-%03d" % i, SC, size="1Gi")
            o["metadata"]["labels"] = {"storm": prefix}
            claims.append(o)
        self.create_all(claims)
        e2e.wait_for("%d PVCs Bound" % m, lambda: sum(
            1 for p in self.cl.get("-n", NSP, "pvc", "-l", "storm=" + prefix)["items"]
            if p.get("status", {}).get("phase") == "Bound") >= m, timeout=max(300, m * 4),
            interval=1)
        off = DriverProbe.log_offset("rbdcsi-node")
        node0 = DriverProbe.proc("rbdcsi-node")
        w = Watch(self.cl, "pod", prefix + "-", pod_running)
        w.start()
        time.sleep(1)
        pods = []
        for c in claims:
            name = c["metadata"]["name"]
            p = e2e.pod(name, name, "sleep 3600", restart="Always")
            p["metadata"]["labels"] = {"storm": prefix}
            p["spec"]["terminationGracePeriodSeconds"] = 1
            pods.append(p)
        log("pod storm: starting %d pods at once, each with its own PVC" % m)
        t0 = time.time()
        self.create_all(pods)
        try:
            e2e.wait_for("%d pods Running" % m, lambda: len(w.reached) >= m,
                         timeout=max(300, m * 10), interval=0.5)
        except e2e.Failed as e:
            self.errors.append(str(e))
        t_all = max(w.reached.values()) - t0 if w.reached else None
        w.stop()
        node1 = DriverProbe.proc("rbdcsi-node")
        fuse = e2e.processes_naming(e2e.STATE_DIR, comm="rbd-fuse")
        fuse_kb = 0
        for pid in fuse:
            try:
                with open("/proc/%d/status" % pid) as f:
                    fuse_kb += sum(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except OSError:
                pass
        calls = DriverProbe.calls("rbdcsi-node", off)
        per_pod = [w.reached[k] - w.seen[k] for k in w.reached if k in w.seen]
        res = {
            "m": m, "all_running_s": round(t_all, 2) if t_all else None,
            "running": len(w.reached), "per_pod_s": dist(per_pod),
            "node_stage_s": dist([d for mm, c, d in calls if mm == "NodeStageVolume" and
                                  c == "OK"]),
            "node_publish_s": dist([d for mm, c, d in calls if mm == "NodePublishVolume" and
                                    c == "OK"]),
            "node_plugin": {"rss_kb": node1["rss_kb"], "hwm_kb": node1["hwm_kb"],
                            "threads": node1["threads"],
                            "cpu_s": round(node1["cpu_s"] - node0["cpu_s"], 2),
                            "staged": m},
            "rbd_fuse": {"processes": len(fuse), "rss_kb": fuse_kb},
        }
        bad = [(mm, c) for mm, c, d in calls if c != "OK"]
        log("pod storm %d: all Running in %s s, per pod p50 %s / p99 %s s; NodeStage p50 %s / "
            "p99 %s s, NodePublish p50 %s / p99 %s s; node plugin RSS %.1f MiB (%d rbd-fuse: "
            "%.1f MiB)" % (m, res["all_running_s"], res["per_pod_s"]["p50"],
                           res["per_pod_s"]["p99"], res["node_stage_s"]["p50"],
                           res["node_stage_s"]["p99"], res["node_publish_s"]["p50"],
                           res["node_publish_s"]["p99"], node1["rss_kb"] / 1024.0, len(fuse),
                           fuse_kb / 1024.0))
        # All pods deleted at once: time until the node holds no mapping.
        t1 = time.time()
        self.cl.kubectl("-n", NSP, "delete", "pod", "-l", "storm=" + prefix, "--wait=false",
                        timeout=600)

        def no_mapping():
            vas = self.cl.get("volumeattachment")["items"]
            return (not e2e.loops_backed_by(e2e.STATE_DIR) and
                    not e2e.processes_naming(e2e.STATE_DIR, comm="rbd-fuse") and
                    not [x for x in e2e.mounts_under(os.path.join(e2e.KUBELET_DIR, "pods"),
                                                     os.path.join(e2e.KUBELET_DIR, "plugins"))
                         if "/kubernetes.io/csi/" in x] and
                    not [v for v in vas if v["spec"]["source"].get(
                        "persistentVolumeName", "") in
                        {p["spec"].get("volumeName") for p in claims_now}])
        claims_now = self.cl.get("-n", NSP, "pvc", "-l", "storm=" + prefix)["items"]
        try:
            e2e.wait_for("no mapping left after %d pods" % m, no_mapping,
                         timeout=max(300, m * 10), interval=0.5)
            res["delete_until_no_mapping_s"] = round(time.time() - t1, 2)
        except e2e.Failed as e:
            self.errors.append(str(e))
            res["delete_until_no_mapping_s"] = None
        calls = DriverProbe.calls("rbdcsi-node", off)
        res["node_unpublish_s"] = dist([d for mm, c, d in calls
                                        if mm == "NodeUnpublishVolume" and c == "OK"])
        res["node_unstage_s"] = dist([d for mm, c, d in calls
                                      if mm == "NodeUnstageVolume" and c == "OK"])
        bad = [(mm, c) for mm, c, d in calls if c != "OK"]
        res["errors"] = len(bad) + (m - len(w.reached))
        res["error_detail"] = {"calls_not_ok": bad[:20], "not_running": m - len(w.reached)}
        log("pod storm %d: all deleted, no mapping left after %s s; errors %d" % (
            m, res["delete_until_no_mapping_s"], res["errors"]))
        try:
            self.delete_and_wait_pool(prefix, m, images_before, timeout=max(300, m * 4))
        except e2e.Failed as e:
            self.errors.append(str(e))
        if res["errors"]:
            self.errors.append("pod storm %d: %d errors: %s" % (m, res["errors"],
                                                                 res["error_detail"]))
        return res

    def api_metrics(self):
        """(count, sum) of every API request the apiserver served so far."""
        p = self.cl.kubectl("get", "--raw", "/metrics", check=False, timeout=60)
        return (metric_sum(p.stdout, "apiserver_request_duration_seconds_count"),
                metric_sum(p.stdout, "apiserver_request_duration_seconds_sum"))

    def events_count(self, reason):
        p = self.cl.kubectl("-n", NSP, "get", "events", "--field-selector", "reason=" + reason,
                            "-o", "name", check=False)
        return len([x for x in p.stdout.split() if x])


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    return {"nproc": os.cpu_count(), "mem_gib": round(mem / 1048576.0, 1),
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "kernel": os.uname().release,
            "harness": "tests/e2e-k8s/e2e.py host processes (rbdcsi and the sidecars with "
                       "deploy/kubernetes arguments), rbd-fuse mapper, memstore Ceph"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--rbdcsi", required=True)
    ap.add_argument("--kustomize", required=True)
    ap.add_argument("--rbdcsi-image")
    ap.add_argument("--pvcs", default="100", help="PVC storm sizes, comma-separated")
    ap.add_argument("--pods", default="10", help="pod storm sizes, comma-separated")
    ap.add_argument("--json", default=os.path.join(e2e.ROOT, "build", "bench.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("storm: must run as root")
    pvcs = [int(x) for x in args.pvcs.split(",") if x.strip()]
    pods = [int(x) for x in args.pods.split(",") if x.strip()]
    e2e.clean()
    if os.path.exists(e2e.KUBELET_DIR) and os.listdir(e2e.KUBELET_DIR):
        sys.exit("storm: %s exists and is not ours; not touching it" % e2e.KUBELET_DIR)
    os.makedirs(e2e.E2E, mode=0o700, exist_ok=True)
    os.makedirs(e2e.RUN, mode=0o700, exist_ok=True)
    cl = e2e.Cluster(args)
    errors = []
    out = {"k8s_pvc_storm": {}, "k8s_pod_storm": {}}
    try:
        for name, fn in [("ceph", cl.ceph_up), ("certs", e2e.certs),
                         ("control plane", cl.control_plane),
                         ("node (containerd, images, kubelet)", cl.node), ("csi", cl.csi)]:
            t = time.time()
            fn()
            log("phase %s: %.1f s" % (name, time.time() - t))
        st = Storms(cl, errors)
        for key, fn, sizes in (("k8s_pvc_storm", st.pvc_storm, pvcs),
                               ("k8s_pod_storm", st.pod_storm, pods)):
            for n in sizes:
                try:
                    out[key][str(n)] = fn(n)
                except Exception as e:  # noqa: BLE001 - the next storm still runs
                    errors.append("%s %d: %s: %s" % (key, n, type(e).__name__, e))
                    import traceback
                    traceback.print_exc()
    except Exception as e:  # noqa: BLE001 - reported, then torn down
        errors.append("%s: %s" % (type(e).__name__, e))
        e2e.dump_logs()
    finally:
        t = time.time()
        e2e.clean()
        log("teardown: %.1f s" % (time.time() - t))
    env = machine()
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc = {}
    if os.path.exists(args.json):
        try:
            with open(args.json) as f:
                doc = json.load(f)
        except ValueError:
            doc = {}
    for key in ("k8s_pvc_storm", "k8s_pod_storm"):
        if out[key]:
            merged = dict(doc.get(key, {}).get("sizes", {}))
            merged.update(out[key])
            doc[key] = {"machine": env, "sizes": merged}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    os.replace(args.json + ".tmp", args.json)
    log("results in %s (k8s_pvc_storm, k8s_pod_storm)" % args.json)
    for e in errors:
        print("ERROR  " + e, flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
