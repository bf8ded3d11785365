#!/usr/bin/env python3
"""Emulated hypervisor steal for the bench (`bench.py --emulate-steal BURST_MS/PERIOD_MS`).

On a shared VM the host now and then runs something else on a vCPU, and whatever the guest had
running there stops for that long: /proc/stat counts it as steal. A quiet VM has none, so the
paced tail that steal causes cannot be seen there. This puts it back: on every CPU the bench may
use, a SCHED_FIFO busy loop (which preempts every normal thread, and keeps the threads queued
on that CPU waiting until the scheduler moves them) takes the CPU for BURST_MS at a time, on
average once every PERIOD_MS, each CPU at its own random times as a host deschedules each vCPU
on its own. Needs root (or CAP_SYS_NICE) for SCHED_FIFO.

As a script: stall.py CPU BURST_MS PERIOD_MS START_AT SECONDS (one CPU; START_AT is a
CLOCK_MONOTONIC time, SECONDS bounds the loop's life).
"""
import os
import random
import subprocess
import sys
import time


def parse(spec):
    """'BURST_MS/PERIOD_MS' -> (burst_ms, period_ms), or ValueError with the reason."""
    try:
        burst, period = (float(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--emulate-steal wants BURST_MS/PERIOD_MS (e.g. 10/500), not {spec!r}")
    if not 0 < burst < period or burst > 200:
        raise ValueError("--emulate-steal: need 0 < BURST_MS < PERIOD_MS and BURST_MS <= 200")
    return burst, period


class Stalls:
    """A context: the machine stalls BURST_MS every PERIOD_MS while it is open (at most
    `seconds`, so that nothing outlives a bench that died)."""

    def __init__(self, burst_ms, period_ms, seconds):
        self.burst_ms, self.period_ms, self.seconds = burst_ms, period_ms, seconds
        self.procs = []

    def __enter__(self):
        start_at = time.monotonic() + 0.2
        for cpu in sorted(os.sched_getaffinity(0)):
            self.procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), str(cpu), str(self.burst_ms),
                 str(self.period_ms), str(start_at), str(self.seconds)],
                stderr=subprocess.PIPE, text=True))
        time.sleep(0.3)
        for p in self.procs:
            if p.poll() is not None:
                why = p.stderr.read().strip()
                self.__exit__()
                sys.exit(f"bench: --emulate-steal: {why or 'a stall loop exited'}")
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.procs = []


def main():
    cpu, burst_ms, period_ms, start_at, seconds = (float(x) for x in sys.argv[1:6])
    os.sched_setaffinity(0, {int(cpu)})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except PermissionError:
        sys.exit("SCHED_FIFO is not permitted: run the bench as root (or with CAP_SYS_NICE)")
    end = start_at + seconds
    period = period_ms / 1000
    stall_at = start_at + random.uniform(0, period)
    while stall_at < end:
        pause = stall_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        until = stall_at + burst_ms / 1000
        while time.monotonic() < until:
            pass
        stall_at += random.uniform(0.5, 1.5) * period


if __name__ == "__main__":
    main()
