#!/usr/bin/env python3
"""Bench helper (not a test): the host's CPU line of /proc/stat, five times a
second, each prefixed with the wall clock, into the file named by the first
argument, until killed. benches/lab.sh and benches/traffic.sh sum it over a
ramp or a phase: busy (user, nice, system, irq, softirq), idle (idle,
iowait) and stolen CPU seconds (USER_HZ = 100)."""
import sys
import time

with open(sys.argv[1], "w") as out:
    while True:
        with open("/proc/stat") as f:
            out.write(f"{time.time():.3f} {f.readline()}")
        out.flush()
        time.sleep(0.2)
