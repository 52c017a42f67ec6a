#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The gRPC edge under hostile load (issue 13): a client that talks raw HTTP/2 (and gRPC) to the
plugin's Unix socket only, runs the loads below against one plugin (--mode=all), samples the
plugin's RSS, measures Probe latency, and asserts the bounds.

  headers   2 connections x 25,000 streams that send only HEADERS (never a message)
  reset     20,000 ListVolumes streams opened and reset at once (HEADERS, or HEADERS + half a
            message, then RST_STREAM): no handler may run for them
  map       8 parallel 1 MiB CreateVolume requests, each a map of 524,000 empty entries
  idle      12,000 idle connections (preface + SETTINGS, then silence); Probe on a connection
            made before, and on a new one once they are 10 s old
  slow      16 CreateVolume to a cluster whose monitor is a closed 127.0.0.1 port, while Probe
            is measured (p50/p99)
  garbage   header blocks with invalid UTF-8 / control bytes (the log must stay valid JSON)

Before the loads: the socket's mode, stat'ed in a tight loop while a plugin starts under umask
000 (it must never be seen wider than --socket-mode). Every load gets a fresh plugin, its peak
RSS from /proc/PID/status (VmHWM reset through clear_refs, and VmRSS sampled every 10 ms). Uses
hpack (Debian's python3-hpack, with python3-h2) for the raw HTTP/2 frames and grpcio.

Counts and times are bounded; each load has a time limit. Results go to --json (the figures for
`make bench`); with --check the bounds are asserted (exit 1 on a violation).

  tests/hostile/hostile.py --rbdcsi build/rbdcsi [--loads headers,reset,...] [--json out.json]
                           [--check] [--scale 1.0]
"""
import argparse
import base64
import json
import os
import resource
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MiB = 1024 * 1024
# A well-formed cephx secret (type 1, 16 key bytes) for a cluster that does not exist.
CEPHX_KEY = base64.b64encode(struct.pack("<HIIH", 1, 0, 0, 16) + bytes(range(16))).decode()

# Bounds asserted with --check: peak RSS of the plugin per load (the controller's deploy limit
# is 256 MiB, the node's 1 GiB; --mode=all must stay well under the smaller one), and Probe
# latency while every worker is stuck on an unreachable cluster.
RSS_LIMIT_MIB = 192
PROBE_P99_LIMIT_MS = 100


def channel(path):
    """A channel with its own connection (grpcio shares one between channels otherwise): each
    client here stands for another process (kubelet, a sidecar, the liveness probe)."""
    return grpc.insecure_channel("unix://" + path, options=[("grpc.use_local_subchannel_pool", 1)])


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags,
                                                             stream_id) + payload


def grpc_message(payload):
    return struct.pack(">BI", 0, len(payload)) + payload


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def create_volume_request(name, params, secrets):
    """CreateVolumeRequest: name=1, volume_capabilities=3, parameters=4, secrets=5."""
    mount_cap = pb_bytes(2, b"") + pb_bytes(3, pb_varint(1 << 3) + pb_varint(1))
    out = pb_bytes(1, name.encode()) + pb_bytes(3, mount_cap)
    for k, v in params.items():
        out += pb_bytes(4, pb_bytes(1, k.encode()) + pb_bytes(2, v.encode()))
    for k, v in secrets.items():
        out += pb_bytes(5, pb_bytes(1, k.encode()) + pb_bytes(2, v.encode()))
    return out


class Plugin:
    """One rbdcsi --mode=all on a socket in a private directory, its RSS sampled."""

    def __init__(self, binary, work, extra=(), env=None):
        self.work = work
        self.sock = os.path.join(work, "csi.sock")
        self.log_path = os.path.join(work, "plugin.log")
        cfg = os.path.join(work, "config.json")
        with open(cfg, "w") as f:
            json.dump([{"clusterID": "dead", "monitors": ["127.0.0.1:1"]}], f)
        os.makedirs(os.path.join(work, "state"), exist_ok=True)
        args = [binary, "--mode=all", "--endpoint=unix://" + self.sock, "--config=" + cfg,
                "--nodeid=hostile-node", "--state-dir=" + os.path.join(work, "state"),
                "--kubelet-dir=" + work, "--log-format=json", "--ceph-connect-timeout=6",
                *extra]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        self.peak_kib = 0
        self.sampling = True
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("plugin did not start; log: " + self.log_path)
            time.sleep(0.02)
        self.channel = channel(self.sock)
        self.probe_call = self.channel.unary_unary("/csi.v1.Identity/Probe")
        while not self.probe(timeout=2)[0]:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("plugin does not answer Probe; log: " + self.log_path)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def rss_kib(self, key="VmRSS"):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _sample(self):
        while self.sampling:
            self.peak_kib = max(self.peak_kib, self.rss_kib())
            time.sleep(0.01)

    def reset_peak(self):
        """Starts a new peak: VmHWM reset through clear_refs (5), and the sampled peak."""
        try:
            with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
                f.write("5")
        except OSError:
            pass
        self.peak_kib = self.rss_kib()

    def peak_mib(self):
        return max(self.peak_kib, self.rss_kib("VmHWM")) / 1024.0

    def probe(self, timeout=5.0):
        """One Probe on the shared channel; returns (ok, milliseconds)."""
        t0 = time.monotonic()
        try:
            self.probe_call(b"", timeout=timeout)
            ok = True
        except grpc.RpcError:
            ok = False
        return ok, (time.monotonic() - t0) * 1000.0

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.sampling = False
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RawConn:
    """A raw HTTP/2 connection: we write frames, a thread reads and answers SETTINGS/PING."""

    def __init__(self, path, read=True, ack=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)  # blocking: waits for room in the backlog
        self.s.settimeout(10)
        self.enc = hpack.Encoder()
        self.lock = threading.Lock()
        self.counts = {}
        self.closed = False
        self.ack = ack
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        if read:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def send(self, data):
        with self.lock:
            try:
                self.s.sendall(data)
                return True
            except OSError:
                self.closed = True
                return False

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.s.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            buf += chunk
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                ftype, flags = buf[3], buf[4]
                payload = buf[9:9 + n]
                buf = buf[9 + n:]
                self.counts[ftype] = self.counts.get(ftype, 0) + 1
                if ftype == SETTINGS and not flags & ACK and self.ack:
                    self.send(frame(SETTINGS, ACK, 0))
                elif ftype == PING and not flags & ACK:
                    self.send(frame(PING, ACK, 0, payload))

    def headers(self, stream_id, path, end_stream=False, extra=()):
        block = self.enc.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                 (":authority", "localhost"),
                                 ("content-type", "application/grpc"), ("te", "trailers"),
                                 *extra])
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id,
                     block)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def settle(p, seconds=1.0):
    time.sleep(seconds)


def load_headers(p, scale):
    """2 connections x 25,000 streams that send only HEADERS."""
    n = int(25000 * scale)
    # One connection acknowledges the server's SETTINGS (so its stream limit applies), one
    # never does (a hostile client need not).
    conns = [RawConn(p.sock), RawConn(p.sock, ack=False)]
    time.sleep(0.2)
    t_end = time.time() + 60
    for c in conns:
        batch = []
        for i in range(n):
            batch.append(c.headers(1 + 2 * i, "/csi.v1.Controller/CreateVolume"))
            if len(batch) == 500:
                c.send(b"".join(batch))
                batch = []
            if time.time() > t_end:
                break
        if batch:
            c.send(b"".join(batch))
    time.sleep(2)
    probes = [p.probe()[1] for _ in range(20)]
    refused = sum(c.counts.get(RST_STREAM, 0) for c in conns)
    for c in conns:
        c.close()
    time.sleep(1.5)  # the streams die with their connections: no handler may run for them
    return {"streams": 2 * n, "streams_refused": refused, "probe_max_ms": round(max(probes), 2),
            "handlers_run": handler_runs(p, "CreateVolume")}


def handler_runs(p, method):
    """Lines a handler of method logged (its "finished" line, any level)."""
    n = 0
    with open(p.log_path, "rb") as f:
        for line in f:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("method") == method and d.get("msg", "").startswith("finished"):
                n += 1
    return n


def load_reset(p, scale):
    """20,000 ListVolumes streams opened and reset at once (half of them after half a message)."""
    n = int(20000 * scale)
    before = handler_runs(p, "ListVolumes")
    c = RawConn(p.sock)
    time.sleep(0.2)
    half = grpc_message(b"\x08\x05")[:3]  # a message prefix cut short
    batch = []
    for i in range(n):
        sid = 1 + 2 * i
        batch.append(c.headers(sid, "/csi.v1.Controller/ListVolumes"))
        if i % 2:
            batch.append(frame(DATA, 0, sid, half))
        batch.append(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))  # CANCEL
        if len(batch) >= 600:
            if not c.send(b"".join(batch)):
                break
            batch = []
    if batch:
        c.send(b"".join(batch))
    time.sleep(3)
    c.close()
    time.sleep(0.5)
    return {"streams": n, "handlers_run": handler_runs(p, "ListVolumes") - before}


def load_map(p, scale):
    """8 parallel 1 MiB CreateVolume requests, each a map of 524,000 empty entries."""
    entries = int(524000 * scale)
    body = pb_bytes(1, b"pvc-map") + b"\x22\x00" * entries
    codes = []

    def one():
        ch = channel(p.sock)
        call = ch.unary_unary("/csi.v1.Controller/CreateVolume")
        try:
            call(body, timeout=60)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
        ch.close()

    ts = [threading.Thread(target=one) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    return {"requests": 8, "bytes_each": len(body), "codes": sorted(set(codes))}


def load_idle(p, scale):
    """12,000 idle connections (preface + SETTINGS, then silence)."""
    n = int(12000 * scale)
    conns = []
    failed = 0
    t_start = time.time()
    t_end = time.time() + 60
    for _ in range(n):
        if time.time() > t_end:
            break
        try:
            conns.append(RawConn(p.sock, read=False))
        except OSError:
            failed += 1
    time.sleep(3)
    # Connections the plugin closed (refused over its cap): EOF is readable.
    closed = 0
    for c in conns:
        try:
            po = select.poll()
            po.register(c.s, select.POLLIN)
            if po.poll(0) and c.s.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    rss_held = p.rss_kib() / 1024.0
    during_ok, during_ms = p.probe(timeout=5)  # a connection made before the flood
    # A new client (a kubelet liveness probe) once the flood's connections are 10 s old and have
    # made no call: the plugin makes room for it.
    time.sleep(max(0.0, t_start + 11 - time.time()))
    ch = channel(p.sock)
    t0 = time.monotonic()
    try:
        ch.unary_unary("/csi.v1.Identity/Probe")(b"", timeout=5)
        new_ok = True
    except grpc.RpcError:
        new_ok = False
    new_ms = (time.monotonic() - t0) * 1000.0
    ch.close()
    for c in conns:
        c.close()
    time.sleep(1)
    ok = False
    for _ in range(50):  # the plugin serves again once they are gone
        ok, _ = p.probe(timeout=2)
        if ok:
            break
        time.sleep(0.1)
    return {"connections": len(conns), "connect_failed": failed, "closed_by_plugin": closed,
            "rss_held_mib": round(rss_held, 1), "probe_after_ok": ok and during_ok,
            "probe_during_ms": round(during_ms, 2), "probe_new_connection_ok": new_ok,
            "probe_new_connection_ms": round(new_ms, 2)}


def load_slow(p, scale):
    """16 CreateVolume to an unreachable cluster while Probe is measured."""
    codes = []

    def one(i):
        ch = channel(p.sock)
        call = ch.unary_unary("/csi.v1.Controller/CreateVolume")
        body = create_volume_request("pvc-slow-%d" % i, {"clusterID": "dead", "pool": "rbd"},
                                     {"userID": "admin", "userKey": CEPHX_KEY})
        try:
            call(body, timeout=60)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
        ch.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    lat = []
    failed = 0
    t_end = time.time() + 5
    while time.time() < t_end and len(lat) < int(400 * max(scale, 0.25)):
        ok, ms = p.probe(timeout=5)
        lat.append(ms)
        failed += 0 if ok else 1
        time.sleep(0.01)
    for t in ts:
        t.join(90)
    lat.sort()
    return {"calls": 16, "codes": sorted(set(codes)), "probes": len(lat), "probes_failed": failed,
            "probe_p50_ms": round(statistics.median(lat), 2),
            "probe_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
            "probe_max_ms": round(lat[-1], 2)}


def load_garbage(p, scale):
    """Header blocks with bytes no log line may copy raw: invalid UTF-8, controls, quotes."""
    bad = [b"\xff\xfe\x80", b"a\"b\\c\nd\x1b[31m", b"\xc3\x28", b"\xed\xa0\x80", b"x" * 300]
    sent = 0
    for v in bad:
        for kind in ("name", "value", "path"):
            try:
                c = RawConn(p.sock)
            except OSError:
                continue
            enc = hpack.Encoder()
            hdrs = [(b":method", b"POST"), (b":scheme", b"http"),
                    (b":path", v if kind == "path" else b"/csi.v1.Identity/Probe"),
                    (b":authority", b"localhost"), (b"content-type", b"application/grpc")]
            if kind == "name":
                hdrs.append((v, b"1"))
            elif kind == "value":
                hdrs += [(b"x-bad", v), (b"grpc-timeout", v), (b"grpc-encoding", v),
                         (b"te", v)]
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, enc.encode(hdrs)))
            # A literal, never-indexed header whose name is raw bytes (no Huffman).
            raw = b"\x10" + bytes([len(v) & 0x7F]) + v[:127] + b"\x01v"
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, raw))
            sent += 2
            time.sleep(0.05)
            c.close()
    time.sleep(0.5)
    return {"header_blocks": sent}


def socket_modes(binary, work):
    """Starts a plugin under umask 000 with --socket-mode=0660 and stats the socket path in a
    tight loop from before it exists until it serves: every mode seen must be 0660."""
    d = tempfile.mkdtemp(prefix="sockmode.", dir=work)
    sock = os.path.join(d, "csi.sock")
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write("[]")
    old = os.umask(0)
    try:
        proc = subprocess.Popen([binary, "--mode=controller", "--endpoint=unix://" + sock,
                                 "--config=" + os.path.join(d, "config.json"),
                                 "--socket-mode=0660"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.umask(old)
    seen = set()
    t_end = time.time() + 20
    n = 0
    while time.time() < t_end and proc.poll() is None:
        try:
            seen.add(os.stat(sock).st_mode & 0o7777)
            n += 1
            if n > 20000:
                break
        except FileNotFoundError:
            pass
    proc.terminate()
    proc.wait(30)
    return sorted(seen)


def check_log(p):
    """Every line of the plugin's log is valid UTF-8 JSON."""
    bad = 0
    lines = 0
    with open(p.log_path, "rb") as f:
        for line in f:
            lines += 1
            try:
                json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                bad += 1
                if bad <= 3:
                    print("hostile: bad log line: %r" % line[:300], file=sys.stderr)
    return lines, bad


LOADS = {"headers": load_headers, "reset": load_reset, "map": load_map, "idle": load_idle,
         "slow": load_slow, "garbage": load_garbage}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rbdcsi", required=True)
    ap.add_argument("--loads", default="headers,reset,map,idle,slow,garbage")
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("plugin_args", nargs="*")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 20000) if hard != resource.RLIM_INFINITY else 20000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    work = tempfile.mkdtemp(prefix="rbdcsi-hostile.")
    results = {"rss_limit_mib": RSS_LIMIT_MIB, "probe_p99_limit_ms": PROBE_P99_LIMIT_MS,
               "loads": {}}
    failures = []
    logs = []
    modes = set()
    for _ in range(3):  # the window of a wider mode was ~0.35 ms: look more than once
        modes.update(socket_modes(os.path.abspath(a.rbdcsi), work))
    modes = sorted(modes)
    results["socket_modes_seen"] = ["%04o" % m for m in modes]
    print("hostile: socket modes seen at start-up under umask 000: %s" %
          results["socket_modes_seen"], flush=True)
    if modes != [0o660]:
        failures.append("socket: modes %s seen, want only 0660" % results["socket_modes_seen"])
    for name in a.loads.split(","):
        # A fresh plugin per load: each peak is that load's alone.
        extra = list(a.plugin_args) + (["--log-level=debug"] if name == "garbage" else [])
        d = os.path.join(work, name)
        os.makedirs(d)
        # gRPC's own log lines (which quote peer bytes) are on for the garbage load.
        env = {"GRPC_VERBOSITY": "DEBUG"} if name == "garbage" else None
        p = Plugin(os.path.abspath(a.rbdcsi), d, extra, env)
        logs.append(p)
        try:
            results.setdefault("idle_rss_mib", round(p.rss_kib() / 1024.0, 1))
            p.reset_peak()
            t0 = time.monotonic()
            r = LOADS[name](p, a.scale)
            settle(p, 0.5)
            r["peak_rss_mib"] = round(p.peak_mib(), 1)
            r["seconds"] = round(time.monotonic() - t0, 1)
            r["plugin_alive"] = p.alive()
            ok, ms = p.probe(timeout=5) if p.alive() else (False, 0)
            r["probe_after_ok"] = r.get("probe_after_ok", True) and ok
        finally:
            p.stop()
        results["loads"][name] = r
        print("hostile: %-8s %s" % (name, json.dumps(r, sort_keys=True)), flush=True)
        if r["peak_rss_mib"] > RSS_LIMIT_MIB:
            failures.append("%s: peak RSS %.1f MiB > %d MiB" %
                            (name, r["peak_rss_mib"], RSS_LIMIT_MIB))
        if name == "idle" and not r["probe_new_connection_ok"]:
            failures.append("idle: a new connection could not Probe while the flood held on")
        if not r["plugin_alive"] or not r["probe_after_ok"]:
            failures.append("%s: plugin not serving Probe after the load" % name)
        if name in ("reset", "headers") and r["handlers_run"] != 0:
            failures.append("%s: %d handlers ran for streams without a whole request" %
                            (name, r["handlers_run"]))
        if name == "slow" and (r["probe_p99_ms"] > PROBE_P99_LIMIT_MS or r["probes_failed"]):
            failures.append("slow: Probe p99 %.1f ms (limit %d), %d failed" %
                            (r["probe_p99_ms"], PROBE_P99_LIMIT_MS, r["probes_failed"]))
        if name == "map" and "OK" in r["codes"]:
            failures.append("map: a 524k-entry map was accepted")
    lines = bad = 0
    for p in logs:
        n, b = check_log(p)
        lines += n
        bad += b
    results["log_lines"] = lines
    results["log_lines_invalid"] = bad
    if bad:
        failures.append("%d of %d log lines are not valid UTF-8 JSON" % (bad, lines))
    print("hostile: log: %d lines, %d invalid" % (lines, bad))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    if a.keep:
        print("hostile: work directory kept: " + work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print("hostile: FAIL " + f, file=sys.stderr)
    if a.check and failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
