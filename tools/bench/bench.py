#!/usr/bin/env python3
"""`./cluster bench`: the subscription workload (docs/performance.md) against a fresh local
cluster, and with `--vs ejabberd` against a local ejabberd in the same run; one JSON line.

The cluster: 1 gateway + 1 roster service + 1 presence router + 1 Redis on this machine
(optimised binaries). Per system: K users are created and run in burst mode (all K×C
subscriptions at once) while the memory of every process is sampled with the K sessions
connected; then K fresh users run in paced mode (`--rate` handshakes started per second).
CPU seconds are read from /proc for every server process.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, HERE)
from local_cluster import LocalCluster  # noqa: E402
import ejabberd as ejabberd_runner  # noqa: E402
import stall  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "secret"


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return {"peak_rss_kb": int(status["VmHWM"].split()[0]),
            "rss_kb": int(status["VmRSS"].split()[0]), "cpu_s": round(cpu, 2)}


def memory_now(pid):
    """RSS and PSS (shared pages divided among the processes that map them) in kB."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


class MemorySampler:
    """Samples RSS and PSS of `pids` every 100 ms; keeps the peak of the sums."""

    def __init__(self, pids):
        self.pids = pids
        self.peak_rss = self.peak_pss = 0
        self.peak_by_process = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rss_sum = pss_sum = 0
            now = {}
            for name, pid in self.pids.items():
                try:
                    rss, pss = memory_now(pid)
                except OSError:
                    continue
                rss_sum += rss
                pss_sum += pss
                now[name] = rss
            if rss_sum > self.peak_rss:
                self.peak_rss = rss_sum
                self.peak_by_process = now
            self.peak_pss = max(self.peak_pss, pss_sum)
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def machine_times():
    """The machine's CPU times from /proc/stat: (busy, idle, steal) in clock ticks."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return user + nice + system + irq + softirq, idle + iowait, steal


def run_loadgen(loadgen, port, prefix, args, rate=0, hold=0.0, latencies_out=None):
    cmd = [loadgen, f"--ports={port}", f"--users={args.users}", f"--contacts={args.contacts}",
           f"--prefix={prefix}", f"--password={PASSWORD}", f"--sasl={args.sasl}",
           f"--timeout_s={args.timeout}", f"--hold_s={hold}"]
    if rate:
        cmd.append(f"--rate={rate}")
    if args.tls:
        cmd.append("--tls")
    if latencies_out:
        cmd.append(f"--latencies_out={latencies_out}")
    limit = args.timeout * 4 + 60
    before = machine_times()
    stalls = stall.Stalls(*args.stalls, seconds=limit) if args.stalls else contextlib.nullcontext()
    with stalls:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
    after = machine_times()
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result = json.loads(line)
    # How much of the machine the run had: on a shared VM the hypervisor's steal moves the
    # tail latencies more than anything else, so every run says how much there was.
    busy, idle, steal = (b - a for a, b in zip(before, after))
    total = max(1, busy + idle + steal)
    result["machine"] = {"busy_pct": round(100 * busy / total, 1),
                         "steal_pct": round(100 * steal / total, 1)}
    if args.stalls:  # counted as busy by /proc/stat: the stall loops are ordinary tasks
        burst_ms, period_ms = args.stalls
        result["machine"]["emulated_steal_pct"] = round(100 * burst_ms / period_ms, 1)
    if out.returncode != 0:
        result["error"] = out.stderr.strip()[-2000:]
    return result


def hop_profile(cluster, handshakes):
    """Mean latency and calls per handshake of every hop, from the services' own histograms."""
    hops = {}
    for name, port in cluster.admin_ports.items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        sums, counts = {}, {}
        for line in text.splitlines():
            m = re.match(r'^(xc_\w+_seconds|grpc_server_handling_seconds)_(sum|count)'
                         r'(\{[^}]*\})? (\S+)$', line)
            if not m:
                continue
            key = m.group(1) + (m.group(3) or "")
            (sums if m.group(2) == "sum" else counts)[key] = float(m.group(4))
        for key, count in counts.items():
            if count:
                hops[f"{name}:{key}"] = {"calls_per_handshake": round(count / handshakes, 2),
                                         "mean_ms": round(sums[key] / count * 1000, 3)}
    return hops


def loop_handoffs(cluster):
    """How work from gRPC's threads reached each process's event loop (EventLoop::Execute)."""
    out = {}
    for name, port in cluster.admin_ports.items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        paths = dict(re.findall(r'^xc_\w+_loop_executes_total\{path="(\w+)"\} (\S+)$', text, re.M))
        inline, posted = float(paths.get("inline", 0)), float(paths.get("posted", 0))
        if inline + posted:
            out[name] = {"inline": int(inline), "posted": int(posted),
                         "inline_share": round(inline / (inline + posted), 3)}
    return out


def measure(system, pids_fn, add_users, port, args, loadgen):
    """The workload against one running system; `pids_fn()` names its server processes."""
    result = {"system": system}

    def latencies(mode):
        if not args.latencies_dir:
            return None
        os.makedirs(args.latencies_dir, exist_ok=True)
        return os.path.join(args.latencies_dir, f"{system}-{mode}.txt")

    t = time.time()
    add_users("u", args.users)
    result["user_creation_s"] = round(time.time() - t, 1)
    pids = pids_fn()
    # What the processes hold before the first login (binaries, libraries, empty state): the
    # per-user figures below are the peak over K, and the growth above this over K.
    idle_rss = sum(memory_now(pid)[0] for pid in pids.values())
    with MemorySampler(pids) as mem:
        # Hold the K sessions a moment after the run so that the sample sees them settled.
        result["burst"] = run_loadgen(loadgen, port, "u", args, hold=1.0,
                                      latencies_out=latencies("burst"))
    k = args.users
    result["memory"] = {
        "peak_rss_kb_total": mem.peak_rss, "peak_rss_kb_per_user": round(mem.peak_rss / k, 1),
        "peak_pss_kb_total": mem.peak_pss, "peak_pss_kb_per_user": round(mem.peak_pss / k, 1),
        "rss_kb_by_process_at_peak": mem.peak_by_process,
        "idle_rss_kb_total": idle_rss,
        "peak_rss_kb_per_user_above_idle": round((mem.peak_rss - idle_rss) / k, 1),
    }
    add_users("p", args.users)
    result["paced"] = run_loadgen(loadgen, port, "p", args, rate=args.rate,
                                  latencies_out=latencies("paced"))
    procs = {name: proc_stats(pid) for name, pid in pids.items()}
    result["processes"] = procs
    result["cpu_s_total"] = round(sum(p["cpu_s"] for p in procs.values()), 2)
    result["lost"] = sum(result[m].get("lost", 0) for m in ("burst", "paced"))
    return result


def bench_cluster(args):
    state = tempfile.mkdtemp(prefix="xc-bench-")
    ok = False
    cluster = LocalCluster(args.bin_dir, state, ["localhost"], gateways=1, tls=args.tls,
                           census_interval="60s", service_flags=args.service_flag,
                           gateway_flags=["--max_connections_per_ip=100000",
                                          "--pre_auth_timeout_s=600"])
    try:
        cluster.start()
        result = measure(
            "xc", lambda: {name: p.pid for name, p in cluster.procs.items()},
            lambda prefix, n: cluster.admin("user", "add-many", prefix, str(n), "localhost",
                                            PASSWORD),
            cluster.gateway_ports[0], args, os.path.join(args.bin_dir, "xc-loadgen"))
        result["hops"] = hop_profile(cluster, 2 * args.users * args.contacts)
        result["loop_handoffs"] = loop_handoffs(cluster)
        ok = True
        return result
    finally:
        cluster.stop()
        if ok and not args.keep_state:
            shutil.rmtree(state, ignore_errors=True)  # ~20 MB of AOF and logs per run at K=5000
        else:
            print(f"cluster state and logs kept in {state}", file=sys.stderr)


def bench_ejabberd(args):
    ejabberd_runner.ensure_installed()
    server = ejabberd_runner.Ejabberd().start()
    try:
        return measure("ejabberd", lambda: {"ejabberd": server.beam_pid()},
                       lambda prefix, n: server.add_users(prefix, n, PASSWORD),
                       server.c2s_port, args, os.path.join(args.bin_dir, "xc-loadgen"))
    finally:
        server.stop()


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--users", type=int, default=1000, help="K")
    ap.add_argument("--contacts", type=int, default=10, help="C")
    ap.add_argument("--rate", type=float, default=1000, help="paced handshakes/s")
    ap.add_argument("--tls", action="store_true", help="STARTTLS on every client stream")
    ap.add_argument("--sasl", default="PLAIN", help="PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per phase at most")
    ap.add_argument("--vs", choices=["ejabberd"], help="run the same workload against it too")
    ap.add_argument("--latencies-dir",
                    help="write every handshake's start and latency, per system and run, here "
                         "(SYSTEM-burst.txt, SYSTEM-paced.txt: 'start_ms latency_ms' lines)")
    ap.add_argument("--service-flag", action="append", default=[], metavar="FLAG",
                    help="extra flag for every cluster process (repeatable), "
                         "e.g. --service-flag=--grpc_streams=false")
    ap.add_argument("--keep-state", action="store_true",
                    help="keep the cluster's state directory and logs (kept anyway on failure)")
    ap.add_argument("--emulate-steal", metavar="BURST_MS/PERIOD_MS",
                    help="while each run goes, stop each CPU for BURST_MS at a time, on average "
                         "every PERIOD_MS, at its own random times (SCHED_FIFO loops, root only), "
                         "as a host that deschedules this VM's vCPUs does (tools/bench/stall.py)")
    args = ap.parse_args()
    args.stalls = None  # (burst_ms, period_ms)
    if args.emulate_steal:
        try:
            args.stalls = stall.parse(args.emulate_steal)
        except ValueError as e:
            sys.exit(f"bench: {e}")
    if args.vs and args.tls:
        sys.exit("bench: --vs ejabberd runs without TLS (the reference figures do)")
    out = {"users": args.users, "contacts": args.contacts, "rate": args.rate, "tls": args.tls,
           "sasl": args.sasl, "service_flags": args.service_flag,
           "emulate_steal": args.emulate_steal,
           "xc": bench_cluster(args)}
    if args.vs == "ejabberd":
        out["ejabberd"] = bench_ejabberd(args)
        xc, ej = out["xc"], out["ejabberd"]
        out["ratios_xc_over_ejabberd"] = {
            "handshakes_per_s": ratio(xc["burst"].get("handshakes_per_s"),
                                      ej["burst"].get("handshakes_per_s")),
            "fanout_per_s": ratio(xc["burst"].get("fanout_per_s"), ej["burst"].get("fanout_per_s")),
            "logins_per_s": ratio(xc["burst"].get("logins_per_s"), ej["burst"].get("logins_per_s")),
            # Lower is better for these two: how many times smaller ours is.
            "paced_p99_ms_smaller_by": ratio(ej["paced"].get("handshake_ms_p99"),
                                             xc["paced"].get("handshake_ms_p99")),
            "rss_per_user_smaller_by": ratio(ej["memory"]["peak_rss_kb_per_user"],
                                             xc["memory"]["peak_rss_kb_per_user"]),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
