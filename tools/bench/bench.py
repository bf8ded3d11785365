#!/usr/bin/env python3
"""`./cluster bench`: the subscription workload against a fresh local cluster; one JSON line.

Starts 1 gateway + 1 roster service + 1 presence router + 1 Redis on this machine (optimised
binaries, plaintext SASL PLAIN so that the numbers measure the cluster, not TLS), creates the
users, runs xc-loadgen in burst mode and in paced mode (fresh users each), and adds the peak RSS
and CPU seconds of every process.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from local_cluster import LocalCluster  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return {"peak_rss_kb": int(status["VmHWM"].split()[0]), "rss_kb": int(status["VmRSS"].split()[0]),
            "cpu_s": round(cpu, 2)}


def hop_profile(cluster, handshakes):
    """Mean latency and calls per handshake of every hop, from the services' own histograms."""
    import re
    import urllib.request
    hops = {}
    for name, port in cluster.admin_ports.items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        sums, counts = {}, {}
        for line in text.splitlines():
            m = re.match(r'^(xc_\w+_seconds|grpc_server_handling_seconds)_(sum|count)(\{[^}]*\})? (\S+)$', line)
            if not m:
                continue
            key = m.group(1) + (m.group(3) or "")
            (sums if m.group(2) == "sum" else counts)[key] = float(m.group(4))
        for key, count in counts.items():
            if count:
                hops[f"{name}:{key}"] = {"calls_per_handshake": round(count / handshakes, 2),
                                         "mean_ms": round(sums[key] / count * 1000, 3)}
    return hops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--contacts", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1000, help="paced handshakes/s")
    ap.add_argument("--timeout", type=int, default=180)
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="xc-bench-")
    cluster = LocalCluster(args.bin_dir, state, ["localhost"], gateways=1,
                           gateway_flags=["--max_connections_per_ip=100000",
                                          "--pre_auth_timeout_s=600"])
    result = {"users": args.users, "contacts": args.contacts}
    try:
        cluster.start()
        t = time.time()
        for prefix in ("u", "p"):
            cluster.admin("user", "add-many", prefix, str(args.users), "localhost", "secret")
        result["user_creation_s"] = round(time.time() - t, 1)
        loadgen = os.path.join(args.bin_dir, "xc-loadgen")
        common = [loadgen, f"--ports={cluster.gateway_ports[0]}", f"--users={args.users}",
                  f"--contacts={args.contacts}", f"--timeout_s={args.timeout}"]
        # Hold the burst run's connections while measuring memory: run paced after it.
        for mode, extra in (("burst", ["--prefix=u"]), ("paced", ["--prefix=p", f"--rate={args.rate}"])):
            out = subprocess.run(common + extra, capture_output=True, text=True, timeout=args.timeout * 4)
            line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
            result[mode] = json.loads(line)
            if out.returncode != 0:
                result[mode]["error"] = out.stderr.strip()[-500:]
        result["hops"] = hop_profile(cluster, 2 * args.users * args.contacts)
        procs = {name: proc_stats(p.pid) for name, p in cluster.procs.items()}
        result["processes"] = procs
        total_peak = sum(p["peak_rss_kb"] for p in procs.values())
        result["peak_rss_kb_total"] = total_peak
        result["peak_rss_kb_per_user"] = round(total_peak / (2 * args.users), 1)
        result["cpu_s_total"] = round(sum(p["cpu_s"] for p in procs.values()), 2)
        result["lost"] = sum(result[m].get("lost", 0) for m in ("burst", "paced"))
    finally:
        cluster.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
