#!/usr/bin/env bash
# Deterministic cost measure (not a timing): system calls per connection of
# c1m serve + c1m flood and of the minimal C pair (benches/c/echo_server.c,
# benches/c/epoll_client.c), counted by `strace -c -f` on the same small run
# in a private network namespace. Each side runs twice, with N and 2N
# connections; the table shows (count at 2N - count at N) / N per call, so
# start-up, teardown and the hold cancel out and what is left is the cost
# one more connection adds. Calls that return an error are shown apart
# (EAGAIN reads and accepts, EINPROGRESS connects).
#
#   benches/syscalls.sh                  # N=3000, 2 server processes, 1 client process
#   N=5000 SERVE_OPTS="--defer-accept" benches/syscalls.sh
#   FLOOD_OPTS="--message-interval 1s" HOLD=3 benches/syscalls.sh
#
# strace slows every call down, so the batching (events per epoll_wait) is
# not what it is at full speed: read epoll_wait per connection as an upper
# bound. Loopback only, inside a throwaway namespace; every process started
# here is ended here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

if [ "${1:-}" = "--in-ns" ]; then
    shift
    work=$1 side=$2 n=$3 tag=$4
    ip link set lo up
    C1M="$root/target/release/c1m"
    srv_procs=${SRV_PROCS:-2} hold=${HOLD:-1}
    if [ "$side" = c1m ]; then
        # shellcheck disable=SC2086
        strace -f -c -o "$work/$tag.serve" "$C1M" serve --bind 127.0.0.1 --port 8888 --ports 20 \
            --procs "$srv_procs" --max-connections $((n * 3)) --json ${SERVE_OPTS:-} > "$work/$tag.serve.out" 2>&1 &
        spid=$!
        for _ in $(seq 1 100); do grep -q '"start"' "$work/$tag.serve.out" 2>/dev/null && break; sleep 0.1; done
        # shellcheck disable=SC2086
        strace -f -c -o "$work/$tag.client" "$C1M" flood 127.0.0.1 8888 --ports 20 --connections "$n" \
            --procs 1 --window 1000 --sources 127.0.1.1 --hold "${hold}s" --json ${FLOOD_OPTS:-} \
            > "$work/$tag.client.out" 2>&1 || { echo "flood failed:" >&2; tail -5 "$work/$tag.client.out" >&2; }
    else
        strace -f -c -o "$work/$tag.serve" "$work/echo_server" 127.0.0.1 8888 20 "$srv_procs" $((n * 3)) \
            > "$work/$tag.serve.out" 2>&1 &
        spid=$!
        sleep 1
        strace -f -c -o "$work/$tag.client" "$work/epoll_client" 127.0.0.1 8888 20 "$n" 1000 1 127.0.1.1 "$hold" \
            > "$work/$tag.client.out" 2>&1 || { echo "C client failed:" >&2; tail -5 "$work/$tag.client.out" >&2; }
    fi
    sleep 3 # the server reads every EOF and closes (the same work on both sides)
    # end the traced server (strace's child), then strace writes its table
    for p in $(pgrep -P "$spid" || true); do kill -TERM "$p" 2>/dev/null || true; done
    wait "$spid" 2>/dev/null || true
    exit 0
fi

N=${N:-3000}
work=$(mktemp -d /tmp/c1m-syscalls.XXXXXX)
trap 'rm -rf "$work"' EXIT
command -v strace > /dev/null || { echo "strace is not installed" >&2; exit 1; }
(cd "$root" && cargo build --release --quiet)
gcc -O2 -Wall -o "$work/echo_server" "$here/c/echo_server.c"
gcc -O2 -Wall -o "$work/epoll_client" "$here/c/epoll_client.c"

for side in c1m c; do
    for n in "$N" $((2 * N)); do
        unshare -n "$0" --in-ns "$work" "$side" "$n" "$side.$n"
    done
done

echo "# $(date -u +%FT%TZ) system calls per connection, (count at $((2 * N)) - count at $N) / $N; strace -c -f"
echo "# c1m serve ${SERVE_OPTS:-} + c1m flood ${FLOOD_OPTS:-}, ${SRV_PROCS:-2} server processes, 1 client process"
python3 - "$work" "$N" <<'PY'
import re, sys
work, n = sys.argv[1], int(sys.argv[2])
def table(path):
    calls = {}
    for line in open(path):
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and re.match(r"^[\d.]+$", f[0]) and f[-1] not in ("total",):
            c = int(f[3]); e = int(f[4]) if len(f) == 6 else 0
            calls[f[-1]] = (c, e)
    return calls
rows = {}
for side in ("c1m", "c"):
    for part in ("serve", "client"):
        a, b = table(f"{work}/{side}.{n}.{part}"), table(f"{work}/{side}.{2*n}.{part}")
        for name in set(a) | set(b):
            (ca, ea), (cb, eb) = a.get(name, (0, 0)), b.get(name, (0, 0))
            rows.setdefault((part, name), {})[side] = ((cb - ca) / n, (eb - ea) / n, cb / (2 * n))
print("# delta: (count at 2N - count at N) / N, exact for the calls every connection makes;")
print("# all/2N: count at 2N / 2N, with start-up, idle wake-ups and teardown (epoll_wait and")
print("# failed accepts depend on timing, read them here)")
print(f"{'':<8}{'call':<14}{'c1m delta':>10}{'(errors)':>9}{'all/2N':>8}{'C delta':>10}{'(errors)':>9}{'all/2N':>8}")
for part in ("serve", "client"):
    tot = {"c1m": [0.0, 0.0], "c": [0.0, 0.0]}
    for (p, name), v in sorted(rows.items(), key=lambda kv: (kv[0][0], -max(x[2] for x in kv[1].values()))):
        if p != part:
            continue
        m, c = v.get("c1m", (0, 0, 0)), v.get("c", (0, 0, 0))
        if max(abs(m[0]), abs(c[0]), m[2], c[2]) < 0.02:
            continue
        for side, x in (("c1m", m), ("c", c)):
            tot[side][0] += x[0]; tot[side][1] += x[2]
        print(f"{part:<8}{name:<14}{m[0]:>10.2f}{m[1]:>9.2f}{m[2]:>8.2f}{c[0]:>10.2f}{c[1]:>9.2f}{c[2]:>8.2f}")
    print(f"{part:<8}{'all':<14}{tot['c1m'][0]:>10.2f}{'':>9}{tot['c1m'][1]:>8.2f}{tot['c'][0]:>10.2f}{'':>9}{tot['c'][1]:>8.2f}")
PY
