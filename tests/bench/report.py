# SPDX-License-Identifier: Apache-2.0
"""make bench: assembles the pieces tests/bench/run.sh left in its result directory into one
JSON file (so two runs can be compared) and prints the table. Targets are reported, never
asserted: the exit status is 0 whenever the report could be made.

    python3 report.py RESULT_DIR OUT_JSON
"""
import json
import os
import re
import statistics
import sys

RES, OUT = sys.argv[1], sys.argv[2]


def load(name, default=None):
    path = os.path.join(RES, name + ".json")
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def load_lines(name):
    path = os.path.join(RES, name + ".jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def ops_delta(before, after, n):
    if not before or not after or "r" not in before:
        return None
    return {k: round((after[k] - before[k]) / n, 1) for k in ("r", "w", "rw")}


def cpu_per_volume(r, b, o, n):
    """CPU ms per volume: the client (loadgen / baseline), the controller, the OSD."""
    if "cpu_s" not in r or "controller_cpu_s" not in o:
        return None
    out = {"rbdcsi_client": round(r["cpu_s"] * 1000 / n, 2),
           "rbdcsi_controller": round(o["controller_cpu_s"] * 1000 / n, 2),
           "baseline": round(b["cpu_s"] * 1000 / n, 2)}
    if o.get("osd_measured"):
        out["osd_rbdcsi"] = round(o["osd_cpu_s_rbdcsi"] * 1000 / n, 2)
        out["osd_baseline"] = round(o["osd_cpu_s_baseline"] * 1000 / n, 2)
    return out


def trace_summary(name):
    path = os.path.join(RES, "trace-%s.txt" % name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip()]
    journal = [l for l in lines if l.startswith(("rbdcsi.", "rbdbench."))]
    data = [l for l in lines if l.startswith("rbd_data.")]
    opens = [l for l in lines if l.startswith("rbd_header.ID [call rbd.get_size,"
                                              "call rbd.get_object_prefix")]
    return {"ops": len(lines), "journal_ops": len(journal), "data_ops": len(data),
            "image_opens": len(opens),
            "rbd_metadata_ops": len(lines) - len(journal) - len(data),
            "journal": journal}


settings = load("settings", {})
env_start = load("env-start", {})
doc = {"settings": settings, "loadavg_start": env_start.get("loadavg"),
       "start": env_start.get("start")}
targets = []


def target(name, value, limit, better, unit=""):
    met = None if value is None else (value >= limit if better == "higher" else value < limit)
    targets.append({"name": name, "value": value, "target": ("%s %s%s" % (
        ">=" if better == "higher" else "<", limit, unit)), "met": met})


# ---- provisioning (slices merged: summed times and counts, percentiles over all samples)
def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[k - 1] / 1000.0


def samples_of(path):
    out = {"create": [], "delete": []}
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                tag, us = line.split()
                out[tag].append(int(us))
    return out


def lat(v):
    return {"n": len(v), "p50_ms": round(pct(v, 50), 3), "p99_ms": round(pct(v, 99), 3),
            "mean_ms": round(sum(v) / len(v) / 1000.0, 3) if v else 0.0}


def merge_prov(who, c):
    runs = [load("prov-%s-%d-r%d" % (who, c, r)) for r in range(settings.get("rounds", 1))]
    runs = [x for x in runs if x]
    if not runs:
        return None
    smp = samples_of(os.path.join(RES, "prov-%s-%d.samples" % (who, c)))
    n = sum(x["n"] for x in runs)
    cs, ds = sum(x["create_s"] for x in runs), sum(x["delete_s"] for x in runs)
    return {"n": n, "create_s": round(cs, 3), "delete_s": round(ds, 3),
            "vols_per_s": round(n / (cs + ds), 2) if cs + ds else None,
            "cpu_s": sum(x.get("cpu_s", 0) for x in runs),
            "slices_vols_per_s": [x["vols_per_s"] for x in runs],
            "create": lat(smp["create"]), "delete": lat(smp["delete"])}


def merge_ops(c):
    runs = [load("ops-%d-r%d" % (c, r)) for r in range(settings.get("rounds", 1))]
    runs = [x for x in runs if x]
    if not runs:
        return {}
    out = {k: sum(x[k] for x in runs) for k in ("controller_cpu_s", "osd_cpu_s_rbdcsi",
                                                 "osd_cpu_s_baseline")}
    out["osd_measured"] = runs[0]["osd_measured"]
    if "r" in runs[0]["rbdcsi_before"]:
        out["rbdcsi_ops"] = {k: sum(x["rbdcsi_after"][k] - x["rbdcsi_before"][k] for x in runs)
                             for k in ("r", "w", "rw")}
        out["baseline_ops"] = {k: sum(x["baseline_after"][k] - x["rbdcsi_after"][k]
                                      for x in runs) for k in ("r", "w", "rw")}
    return out


def per_volume(ops, n):
    return {k: round(v / n, 1) for k, v in ops.items()} if ops else None


prov = []
for c in settings.get("conc", []):
    r, b, o = merge_prov("rbdcsi", c), merge_prov("baseline", c), merge_ops(c)
    if not r or not b:
        continue
    n = r["n"]
    prov.append({
        "conc": c, "n": n, "rbdcsi": r, "baseline": b,
        "ratio": ratio(r["vols_per_s"], b["vols_per_s"]),
        "slice_ratios": [ratio(x, y) for x, y in zip(r["slices_vols_per_s"],
                                                     b["slices_vols_per_s"])],
        "cpu_ms_per_volume": cpu_per_volume(r, b, o, n),
        "osd_ops_per_volume": {"rbdcsi": per_volume(o.get("rbdcsi_ops"), n),
                               "baseline": per_volume(o.get("baseline_ops"), b["n"])},
    })
doc["provisioning"] = prov
doc["optrace_one_volume"] = {"rbdcsi": trace_summary("rbdcsi"),
                             "baseline": trace_summary("baseline")}
for p in prov:
    if p["conc"] == 16:
        target("provisioning c16 vols/s ratio to baseline", p["ratio"], 0.7, "higher")
    if p["conc"] == 64:
        target("provisioning c64 vols/s ratio to baseline", p["ratio"], 0.8, "higher")

# ---- CreateVolume latency, empty vs full pool
def lat_load(name):
    """lat-NAME.json, its "create" figures over every slice's samples when there are any."""
    v = load(name)
    smp = samples_of(os.path.join(RES, name + ".samples"))
    if v and smp["create"]:
        v["create"] = lat_of(smp["create"])
    return v


lat_of = lat
lat = {}
for state in ("empty", "full"):
    r, b = lat_load("lat-%s-rbdcsi" % state), lat_load("lat-%s-baseline" % state)
    if r and b:
        lat[state] = {"rbdcsi": r["create"], "baseline": b["create"],
                      "ratio_p50": ratio(r["create"]["p50_ms"], b["create"]["p50_ms"])}
if "empty" in lat and "full" in lat:
    lat["full_over_empty_p50"] = {
        "rbdcsi": ratio(lat["full"]["rbdcsi"]["p50_ms"], lat["empty"]["rbdcsi"]["p50_ms"]),
        "baseline": ratio(lat["full"]["baseline"]["p50_ms"], lat["empty"]["baseline"]["p50_ms"])}
# The steps on the way to the full pool (BENCH_FILL_STEPS): p50 at each, and over the empty
# pool's, for rbdcsi and the floor measured at the same moment.
steps = []
for name in sorted(os.listdir(RES)):
    m = re.match(r"lat-step-(\d+)-rbdcsi\.json$", name)
    b = lat_load("lat-step-%s-baseline" % m.group(1)) if m else None
    if m and b:
        r = lat_load(name[:-5])
        steps.append({"volumes": int(m.group(1)), "rbdcsi": r["create"], "baseline": b["create"],
                      "ratio_p50": ratio(r["create"]["p50_ms"], b["create"]["p50_ms"])})
steps.sort(key=lambda x: x["volumes"])
if steps:
    lat["steps"] = steps
if "empty" in lat and "full" in lat:
    curve = [(0, lat["empty"])] + [(x["volumes"], x) for x in steps] + \
        [(settings.get("fill", 0), lat["full"])]
    lat["p50_over_empty"] = [{"volumes": v, "rbdcsi": ratio(x["rbdcsi"]["p50_ms"],
                                                            lat["empty"]["rbdcsi"]["p50_ms"]),
                              "baseline": ratio(x["baseline"]["p50_ms"],
                                                lat["empty"]["baseline"]["p50_ms"])}
                             for v, x in curve]
# OSD ops per CreateVolume + DeleteVolume at each pool size (own cluster only): what the
# driver asks of the OSD, which the machine's load does not move.
ops_by = {}
for name in ["empty"] + ["step-%d" % x["volumes"] for x in steps] + ["full"]:
    rows = [x for x in load_lines("ops-lat-" + name) if "r" in x["before"]]
    n = sum(x["n"] for x in rows)
    if n:
        ops_by[name] = {k: round(sum(x["after"][k] - x["before"][k] for x in rows) / n, 1)
                        for k in ("r", "w", "rw")}
if ops_by:
    lat["osd_ops_per_volume"] = ops_by
lat["fill"] = load("fill")
doc["create_latency"] = lat

# ---- ListVolumes
lr, lb, lo = load("list-rbdcsi"), load("list-baseline"), load("ops-list", {})
lp = load("list-baseline-pipelined")
if lr:
    doc["list"] = {"rbdcsi": lr, "baseline": lb, "baseline_pipelined": lp,
                   "ratio": ratio(lr["secs"], lb["secs"]) if lb else None,
                   "ratio_to_pipelined": ratio(lr["secs"], lp["secs"]) if lp else None,
                   "osd_ops": ops_delta(lo.get("rbdcsi_before"), lo.get("rbdcsi_after"), 1)}

# ---- Probe
probe = {k: load("probe-" + k) for k in ("controller", "node")}
doc["probe"] = {k: v["probe"] for k, v in probe.items() if v}
if probe.get("controller"):
    target("Probe p50 (controller)", probe["controller"]["probe"]["p50_ms"], 0.2, "lower", " ms")

# ---- footprint
fp = {}
for name in ("controller-idle", "controller-connected", "controller-provisioned",
             "controller-calls1", "controller-calls2",
             "node-idle", "node-calls1", "node-calls2", "node-staged", "baseline",
             "idle-libs", "idle-libs-noceph"):
    v = load("fp-" + name)
    if v:
        v.pop("name", None)
        fp[name] = v
for who in ("controller", "node"):
    a, b = fp.get(who + "-calls1"), fp.get(who + "-calls2")
    if a and b:
        fp[who + "-growth_kb_per_%d_calls" % settings.get("calls", 0)] = {
            "rss_kb": b["rss_kb"] - a["rss_kb"], "anon_kb": b["anon_kb"] - a["anon_kb"]}
# The controller after every provisioning slice vs the bare librados+librbd client that did the
# same burst (each slice is its own process; the largest at a concurrency). The target uses the
# bare client at concurrency 16: one client connection gets at most 16 calls in flight
# (--max-streams), so that is what the controller ran at once; the bare client at 64 runs 64
# threads and holds more.
bare = {}
for c in settings.get("conc") or []:
    runs = [load("prov-baseline-%d-r%d" % (c, r)) for r in range(settings.get("rounds", 1))]
    runs = [x["footprint"] for x in runs if x and "footprint" in x]
    if runs:
        bare[c] = max(runs, key=lambda x: x["rss_kb"])
if bare and "controller-provisioned" in fp:
    c = 16 if 16 in bare else max(bare)
    fp["after_provisioning_vs_bare"] = {
        "controller_rss_kb": fp["controller-provisioned"]["rss_kb"],
        "controller_hwm_kb": fp["controller-provisioned"].get("hwm_kb"),
        "bare_by_conc": {str(k): v for k, v in sorted(bare.items())},
        "bare_conc": c, "bare_rss_kb": bare[c]["rss_kb"],
        "ratio": ratio(fp["controller-provisioned"]["rss_kb"], bare[c]["rss_kb"]),
        "ratio_by_conc": {str(k): ratio(fp["controller-provisioned"]["rss_kb"], v["rss_kb"])
                          for k, v in sorted(bare.items())}}
doc["footprint"] = fp
MiB = 1024.0
if "after_provisioning_vs_bare" in fp:
    target("controller RSS after provisioning / bare librados+librbd client after the same "
           "burst", fp["after_provisioning_vs_bare"]["ratio"], 1.15, "lower")
if "node-idle" in fp:
    target("node idle RSS", round(fp["node-idle"]["rss_kb"] / MiB, 1), 16, "lower", " MiB")
if "controller-connected" in fp:
    target("controller RSS, one cluster connection",
           round(fp["controller-connected"]["rss_kb"] / MiB, 1), 24, "lower", " MiB")
for who in ("controller", "node"):
    g = fp.get(who + "-growth_kb_per_%d_calls" % settings.get("calls", 0))
    if g:
        target("%s RSS growth over the second %d calls" % (who, settings.get("calls", 0)),
               round(g["rss_kb"] / MiB, 2), 0.5, "lower", " MiB")

# ---- staging
sd, ss = load_lines("stage-driver"), load_lines("stage-shell")
sdf, ssf = load_lines("stage-driver-full"), load_lines("stage-shell-full")
if sd and ss:
    dc = [c for l in sd for c in l["cycles_ms"]]
    sc = [c for l in ss for c in l["cycles_ms"]]
    steps = {k: round(statistics.median([l[k]["p50_ms"] for l in sd]), 3)
             for k in ("stage", "publish", "unpublish", "unstage")}
    doc["staging"] = {
        "rbdcsi_cycles_ms": dc, "shell_cycles_ms": sc,
        "rbdcsi_median_ms": round(statistics.median(dc), 3),
        "shell_median_ms": round(statistics.median(sc), 3),
        "rbdcsi_first_ms": dc[0], "shell_first_ms": sc[0],
        "rbdcsi_step_median_ms": steps,
        "ratio": ratio(statistics.median(dc), statistics.median(sc)),
    }
    if sdf and ssf:
        dcf = [c for l in sdf for c in l["cycles_ms"]]
        scf = [c for l in ssf for c in l["cycles_ms"]]
        doc["staging"]["full_pool"] = {
            "rbdcsi_cycles_ms": dcf, "shell_cycles_ms": scf,
            "rbdcsi_median_ms": round(statistics.median(dcf), 3),
            "shell_median_ms": round(statistics.median(scf), 3),
            "ratio": ratio(statistics.median(dcf), statistics.median(scf))}
    target("staging cycle ratio to the shell script", doc["staging"]["ratio"], 1.1, "lower")

# ---- start-up
st = {k: load("startup-" + k) for k in ("controller", "node")}
doc["startup"] = {k: v for k, v in st.items() if v}
for k, v in doc["startup"].items():
    target("start-up to a served Probe, %s (median)" % k, v["startup"]["p50_ms"], 50, "lower",
           " ms")

# ---- group snapshots (tests/bench/group_snapshot.py, issue 15)
gsnap = load("group-snapshot")
if gsnap:
    doc["group_snapshot"] = gsnap

# ---- hostile loads (tests/hostile/hostile.py, issue 13)
hostile = load("hostile")
if hostile:
    doc["hostile"] = hostile
    for name, r in sorted(hostile["loads"].items()):
        target("peak RSS under the hostile %s load" % name, r["peak_rss_mib"],
               hostile["rss_limit_mib"], "lower", " MiB")
    if "slow" in hostile["loads"]:
        target("Probe p99 while every worker waits on a dead cluster",
               hostile["loads"]["slow"]["probe_p99_ms"], hostile["probe_p99_limit_ms"], "lower",
               " ms")
# ---- QoS accuracy (tests/bench/qos.py, issue 15): achieved / configured, off by under 10 %
qos = load("qos")
if qos:
    doc["qos"] = qos
    for r in qos["iops"]:
        target("QoS |achieved/configured - 1| at maxWriteIops %d (%.1f achieved)" % (
            r["configured"], r["achieved"]), round(abs(r["ratio"] - 1), 3), 0.1, "lower")
    if qos.get("bps"):
        target("QoS |achieved/configured - 1| at maxWriteBps %d" % qos["bps"]["configured"],
               round(abs(qos["bps"]["ratio"] - 1), 3), 0.1, "lower")
# ---- staging on a real kernel: the check-kernel guest (qemu TCG), emulated CPU
ks = load("kernel-staging")
if ks:
    doc["kernel_staging_emulated_cpu"] = {
        "note": "EMULATED CPU: measured inside the check-kernel guest (qemu TCG, "
                "tests/kernel/run.sh bench), ext4 on 64 MiB volumes, NodeStageVolume only; "
                "absolute seconds, not comparable with the host figures above",
    }
    for m, v in ks.items():
        doc["kernel_staging_emulated_cpu"][m] = dict(
            v, first_median_s=round(statistics.median(v["first_stage_with_mkfs_s"]), 3),
            later_median_s=round(statistics.median(v["later_stage_s"]), 3))

doc["targets"] = targets
with open(OUT + ".tmp", "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
    f.write("\n")
os.replace(OUT + ".tmp", OUT)

# ---- the table
prev = None
prev_path = OUT[:-5] + ".prev.json" if OUT.endswith(".json") else None
if prev_path and os.path.exists(prev_path):
    try:
        with open(prev_path) as f:
            prev = json.load(f)
    except (OSError, ValueError):
        prev = None


def f(v, fmt="%.2f"):
    return "-" if v is None else fmt % v


print()
print("rbdcsi bench  %s  (%s cores, load %s -> %s)  version %s" % (
    doc.get("start", ""), settings.get("nproc"), doc.get("loadavg_start"),
    settings.get("loadavg_end"), settings.get("version")))
print("ratios are rbdcsi / floor measured in the same run; absolute times are informative only")
print()
if prov:
    print("Provisioning: %d x (CreateVolume + DeleteVolume), %d MiB volumes" % (
        prov[0]["n"], settings.get("size_mib", 0)))
    print("  %-5s %9s %9s %6s | %-19s %-19s | %-19s %-19s | %s" % (
        "conc", "rbdcsi/s", "floor/s", "ratio", "create p50/p99 ms", "  floor",
        "delete p50/p99 ms", "  floor", "OSD ops/vol r,w,rw rbdcsi | floor"))
    for p in prov:
        r, b, o = p["rbdcsi"], p["baseline"], p["osd_ops_per_volume"]

        def pp(s):
            return "%8.1f /%8.1f" % (s["p50_ms"], s["p99_ms"])

        def ops(x):
            return "-" if not x else "%g,%g,%g" % (x["r"], x["w"], x["rw"])
        print("  %-5d %9.1f %9.1f %6s | %-19s %-19s | %-19s %-19s | %s | %s" % (
            p["conc"], r["vols_per_s"], b["vols_per_s"], f(p["ratio"]), pp(r["create"]),
            pp(b["create"]), pp(r["delete"]), pp(b["delete"]), ops(o["rbdcsi"]),
            ops(o["baseline"])))
    print("  ratio per slice: %s" % ";  ".join(
        "c%d %s" % (p["conc"], ", ".join(f(x) for x in p["slice_ratios"])) for p in prov))
    print("  CPU ms per volume: rbdcsi = client + controller (+ OSD) | floor = its process "
          "(+ OSD)")
    for p in prov:
        c = p["cpu_ms_per_volume"]
        if c:
            print("  %-5d %6.2f + %6.2f%s | %6.2f%s" % (
                p["conc"], c["rbdcsi_client"], c["rbdcsi_controller"],
                " (+ %6.2f)" % c["osd_rbdcsi"] if "osd_rbdcsi" in c else "", c["baseline"],
                " (+ %6.2f)" % c["osd_baseline"] if "osd_baseline" in c else ""))
    t = doc["optrace_one_volume"]
    if t["rbdcsi"] and t["baseline"]:
        print("  OSD ops for one volume (create + delete): rbdcsi %d (journal %d, image opens %d,"
              " data %d), floor %d (journal %d, image opens %d, data %d)" % (
                  t["rbdcsi"]["ops"], t["rbdcsi"]["journal_ops"], t["rbdcsi"]["image_opens"],
                  t["rbdcsi"]["data_ops"], t["baseline"]["ops"], t["baseline"]["journal_ops"],
                  t["baseline"]["image_opens"], t["baseline"]["data_ops"]))
    print()
if "empty" in lat:
    print("CreateVolume latency, sequential (%d calls), ms: p50 / p99" % settings.get("lat_n", 0))
    rows = ([("empty", lat["empty"])] if "empty" in lat else []) + \
        [("%d-vol" % x["volumes"], x) for x in lat.get("steps", [])] + \
        ([("%d-vol" % settings.get("fill", 0), lat["full"])] if "full" in lat else [])
    for label, l in rows:
        print("  %-9s pool: rbdcsi %7.2f / %7.2f   floor %7.2f / %7.2f   ratio p50 %s" % (
            label, l["rbdcsi"]["p50_ms"], l["rbdcsi"]["p99_ms"], l["baseline"]["p50_ms"],
            l["baseline"]["p99_ms"], f(l["ratio_p50"])))
    if "p50_over_empty" in lat:
        print("  p50 / empty-pool p50 (rbdcsi, floor): %s" % ";  ".join(
            "%d: %s, %s" % (x["volumes"], f(x["rbdcsi"]), f(x["baseline"]))
            for x in lat["p50_over_empty"]))
    if "osd_ops_per_volume" in lat:
        print("  OSD ops per CreateVolume+DeleteVolume (r,w,rw): %s" % ";  ".join(
            "%s %s,%s,%s" % (k, v["r"], v["w"], v["rw"])
            for k, v in lat["osd_ops_per_volume"].items()))
    if "full_over_empty_p50" in lat:
        print("  full/empty p50: rbdcsi %s, floor %s" % (
            f(lat["full_over_empty_p50"]["rbdcsi"]), f(lat["full_over_empty_p50"]["baseline"])))
    print()
if "list" in doc:
    l = doc["list"]
    print("ListVolumes: %d entries in %d pages of 500: %.2f s (page p50 %.1f ms); the same reads "
          "bare, one at a time: %s s (ratio %s); %s in flight: %s s" % (
              l["rbdcsi"]["entries"], l["rbdcsi"]["pages"], l["rbdcsi"]["secs"],
              l["rbdcsi"]["page"]["p50_ms"], f(l["baseline"]["secs"] if l["baseline"] else None),
              f(l["ratio"]), lp["inflight"] if lp else "-", f(lp["secs"] if lp else None)))
    print()
if doc["probe"]:
    print("Probe, %d sequential calls, ms: %s" % (settings.get("calls", 0), ";  ".join(
        "%s p50 %.3f p99 %.3f" % (k, v["p50_ms"], v["p99_ms"]) for k, v in doc["probe"].items())))
    print()
if fp:
    print("Footprint: RSS MiB (anon MiB), threads")
    for name, v in fp.items():
        if "threads" in v:
            top = ", ".join("%s %.1f" % (k, kb / MiB) for k, kb in
                            sorted(v.get("top", {}).items(), key=lambda x: -x[1])[:4])
            print("  %-22s %6.1f (%5.1f)  %3d%s" % (
                name, v["rss_kb"] / MiB, v["anon_kb"] / MiB, v["threads"],
                "   top: " + top if top else ""))
    for name, v in fp.items():
        if "threads" not in v and "anon_kb" in v:
            print("  %-22s RSS %+d kB, anon %+d kB" % (name, v["rss_kb"], v["anon_kb"]))
    v = fp.get("after_provisioning_vs_bare")
    if v:
        print("  controller after provisioning %.1f MiB vs a bare librados+librbd client after "
              "the same burst: %s" % (v["controller_rss_kb"] / MiB, ";  ".join(
                  "c%s %.1f MiB, ratio %s" % (k, b["rss_kb"] / MiB, v["ratio_by_conc"][k])
                  for k, b in v["bare_by_conc"].items())))
    print("  floors: baseline = a bare librados+librbd client after one volume's work; idle-libs ="
          " a process that only loads rbdcsi's libraries and librbd/librados (which rbdcsi loads"
          " at its first cluster connection: the controller's floor); idle-libs-noceph = the same"
          " without librbd/librados (the node plugin's floor)")
    print()
if "staging" in doc:
    s = doc["staging"]
    print("Staging (rbd-fuse, ext4, 1 GiB; stage+publish+unpublish+unstage; empty pool), ms:")
    print("  rbdcsi median %.1f (first %.1f)   shell median %.1f (first %.1f)   ratio %s" % (
        s["rbdcsi_median_ms"], s["rbdcsi_first_ms"], s["shell_median_ms"], s["shell_first_ms"],
        f(s["ratio"])))
    print("  rbdcsi steps (median): %s" % ", ".join(
        "%s %.1f" % kv for kv in s["rbdcsi_step_median_ms"].items()))
    if "full_pool" in s:
        fpool = s["full_pool"]
        print("  with %d volumes in the pool: rbdcsi median %.1f, shell median %.1f, ratio %s "
              "(rbd-fuse lists the pool on each lookup)" % (
                  settings.get("fill", 0), fpool["rbdcsi_median_ms"], fpool["shell_median_ms"],
                  f(fpool["ratio"])))
    print()
if doc["startup"]:
    print("Start-up to a served Probe, ms: %s" % ";  ".join(
        "%s median %.1f (max %.1f; socket bound at %s)" % (
            k, v["startup"]["p50_ms"], v["startup"]["max_ms"],
            f(statistics.median(v["socket_ms"]), "%.1f") if v.get("socket_ms") else "-")
        for k, v in doc["startup"].items()))
    print()
if "kernel_staging_emulated_cpu" in doc:
    print("Staging on a real kernel, EMULATED CPU (qemu TCG guest; ext4, 64 MiB; NodeStage), s:")
    for m, v in doc["kernel_staging_emulated_cpu"].items():
        if m != "note":
            print("  %-8s first stage (mkfs) median %.2f   later stages median %.2f" % (
                m, v["first_median_s"], v["later_median_s"]))
    print()
if "group_snapshot" in doc:
    print("Group snapshots (%d MiB written per volume), ms:" % doc["group_snapshot"]["write_mib"])
    for n, g in sorted(doc["group_snapshot"]["groups"].items(), key=lambda x: int(x[0])):
        print("  %2s volumes: group median %.0f, one by one median %.0f, ratio %s" % (
            n, g["group_median_ms"], g["one_by_one_median_ms"], f(g["ratio"])))
    print()
print("Targets (reported, not asserted):")
prev_t = {t["name"]: t for t in (prev or {}).get("targets", [])}
for t in targets:
    p = prev_t.get(t["name"])
    print("  %-52s %10s  target %-10s %s%s" % (
        t["name"], f(t["value"], "%g"), t["target"],
        "met" if t["met"] else ("MISSED" if t["met"] is False else "-"),
        ("   (previous run: %s)" % f(p["value"], "%g")) if p else ""))
print()
print("written: %s" % OUT)
