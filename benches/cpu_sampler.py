#!/usr/bin/env python3
"""Bench helper (not a test): the host's CPU line of /proc/stat, five times a
second, each prefixed with the wall clock, into the file named by the first
argument, until killed. benches/lab.sh and benches/traffic.sh import
`window` from here to sum it over a ramp or a phase."""
import sys
import time


def window(log, a, b):
    """(busy, idle, stolen) CPU seconds from the sample just before `a` to
    the one just after `b` in the sampler's file `log`: busy is user, nice,
    system, irq and softirq; idle is idle and iowait (USER_HZ = 100). None
    when the file does not bracket the window."""
    rows = []
    with open(log) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 10 and fields[1] == "cpu":
                rows.append((float(fields[0]), [int(x) for x in fields[2:10]]))
    if a is None or b is None or b <= a:
        return None
    before = [r for r in rows if r[0] <= a]
    after = [r for r in rows if r[0] >= b]
    if not before or not after:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (
        y - x for x, y in zip(before[-1][1], after[0][1]))
    return ((user + nice + system + irq + softirq) / 100, (idle + iowait) / 100, steal / 100)


if __name__ == "__main__":
    with open(sys.argv[1], "w") as out:
        while True:
            with open("/proc/stat") as f:
                out.write(f"{time.time():.3f} {f.readline()}")
            out.flush()
            time.sleep(0.2)
