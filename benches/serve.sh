#!/usr/bin/env bash
# Benchmark (not a test): N idle connections to `c1m serve` and to a minimal
# C epoll echo server (benches/c/echo_server.c), same ports, same number of
# processes, same client (benches/c/epoll_client.c with a source address
# and a hold: it checks one echo on every connection and then holds it
# idle; flood.sh's baseline is the same client). Prints, for each server, the
# user memory per idle connection (RSS of the server's processes after the
# connections, minus before, divided by N), the accept rate (connections
# established and echoed per second, timed by the clients), and the CPU time
# the server spent, then the ratios c1m / C, all from this one run.
#
#   benches/serve.sh                 # N=100000 PORTS=20 PORT=11000
#   N=20000 HERD=1 benches/serve.sh  # also c1m with --wake all (no EPOLLEXCLUSIVE)
#   MAXCONN=1000000 benches/serve.sh # c1m plans for 1M (51 workers), C gets as many
#   METRICS=0 benches/serve.sh       # skip the run with --metrics (scraped every second)
#
# With METRICS=1 (the default) c1m runs a second time with
# `--metrics 127.0.0.1:MPORT` and a scraper reading /metrics every second,
# and the ratio with/without is printed (the issue's goal: at most 2% slower).
#
# Loopback only; every process started here is ended here.
set -euo pipefail
N=${N:-100000}
PORTS=${PORTS:-20}
PORT=${PORT:-11000}
PER_CLIENT=${PER_CLIENT:-17000}
HERD=${HERD:-0}
METRICS=${METRICS:-1}
MPORT=${MPORT:-19390}
# what c1m serve plans for (its auto worker count follows); default N
MAXCONN=${MAXCONN:-$N}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/c1m-serve-bench.XXXXXX)
pids_to_kill=()
cleanup() {
    for p in "${pids_to_kill[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids_to_kill[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && cargo build --release --quiet)
C1M="$root/target/release/c1m"
gcc -O2 -Wall -o "$work/echo_server" "$here/c/echo_server.c"
gcc -O2 -Wall -o "$work/epoll_client" "$here/c/epoll_client.c"

# every port of the range must be free
python3 - "$PORT" "$PORTS" <<'PY'
import socket, sys
first, n = int(sys.argv[1]), int(sys.argv[2])
for p in range(first, first + n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try: s.bind(("127.0.0.1", p))
    except OSError as e: sys.exit(f"port {p} is taken ({e}); pick another PORT=")
    s.close()
PY

clients=$(( (N + PER_CLIENT - 1) / PER_CLIENT ))
tree_pids() { echo "$1"; pgrep -P "$1" || true; }
rss_sum() { local t=0; for p in $(tree_pids "$1"); do t=$(( t + $(awk '{print $2}' /proc/$p/statm 2>/dev/null || echo 0) * 4096 )); done; echo $t; }
cpu_sum() { local t=0; for p in $(tree_pids "$1"); do t=$(( t + $(sed 's/.*) //' /proc/$p/stat 2>/dev/null | awk '{print $12+$13}' || echo 0) )); done; echo $t; }
wait_line() { # file pattern seconds
    for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# run_one NAME CMD...: start the server, wait for "listening on", connect N
# clients, measure, stop. Prints "NAME bytes_per_conn rate cpu_s verified".
run_one() {
    local name=$1; shift
    "$@" > "$work/$name.out" 2> "$work/$name.err" &
    local spid=$!
    pids_to_kill+=("$spid")
    wait_line "$work/$name.out" "^listening on" 60
    sleep 1
    local rss0 cpu0; rss0=$(rss_sum "$spid"); cpu0=$(cpu_sum "$spid")
    local cpids=() left=$N
    for i in $(seq 0 $(( clients - 1 ))); do
        local c=$(( left < PER_CLIENT ? left : PER_CLIENT )); left=$(( left - c ))
        # one process, window 1000, its own source address, held 600 s at most
        "$work/epoll_client" 127.0.0.1 "$PORT" "$PORTS" "$c" 1000 1 "127.0.0.$(( 10 + i ))" 600 > "$work/$name.client$i" 2>&1 &
        cpids+=("$!"); pids_to_kill+=("$!")
    done
    for i in $(seq 0 $(( clients - 1 ))); do wait_line "$work/$name.client$i" "^done" 300; done
    local cpu1; cpu1=$(cpu_sum "$spid")
    sleep 3 # let the server settle and print an interval line
    local rss1; rss1=$(rss_sum "$spid")
    local ms=0 ver=0
    for i in $(seq 0 $(( clients - 1 ))); do
        local l; l=$(grep '^done' "$work/$name.client$i")
        # done verified=V of N failed=F ms=T: R/s
        local m=${l#*ms=}; m=${m%%:*}; local v=${l#*verified=}; v=${v%% *}
        (( m > ms )) && ms=$m; ver=$(( ver + v ))
    done
    grep -E '^connections' "$work/$name.out" | tail -1 | sed "s/^/  $name says: /" >&2 || true
    for p in "${cpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${cpids[@]}"; do wait "$p" 2>/dev/null || true; done
    kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
    local hz; hz=$(getconf CLK_TCK)
    python3 -c "
import sys
n, ver, rss0, rss1, ms, cpu = $N, $ver, $rss0, $rss1, $ms, ($cpu1 - $cpu0) / $hz
print('$name', f'{(rss1 - rss0) / max(ver, 1):.2f}', f'{ver / (ms / 1000):.0f}', f'{cpu:.2f}', ver, rss0, rss1, ms)
"
}

c1m_line=$(run_one c1m "$C1M" serve --bind 127.0.0.1 --port "$PORT" --ports "$PORTS" --workers auto --max-connections "$MAXCONN")
workers=$(grep -o '[0-9]* workers)' "$work/c1m.out" | head -1 | grep -o '[0-9]*')
cap=$(( (MAXCONN + workers - 1) / workers ))
tail -n 25 "$work/c1m.out" | grep -E 'user memory|peak connections|accepted' | sed 's/^/  c1m summary: /' >&2 || true
c_line=$(run_one c_epoll "$work/echo_server" 127.0.0.1 "$PORT" "$PORTS" "$workers" "$cap")
metrics_line=""
if [ "$METRICS" = 1 ]; then
    ( while sleep 1; do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$MPORT/metrics" || true; done ) &
    scraper=$!; pids_to_kill+=("$scraper")
    metrics_line=$(run_one c1m_metrics "$C1M" serve --bind 127.0.0.1 --port "$PORT" --ports "$PORTS" --workers auto --max-connections "$MAXCONN" --metrics "127.0.0.1:$MPORT")
    kill "$scraper" 2>/dev/null || true
fi
herd_line=""
if [ "$HERD" = 1 ]; then
    herd_line=$(run_one c1m_wake_all "$C1M" serve --bind 127.0.0.1 --port "$PORT" --ports "$PORTS" --workers auto --max-connections "$MAXCONN" --wake all)
fi

python3 - "$N" "$PORTS" "$workers" "$c1m_line" "$c_line" "$herd_line" "$metrics_line" <<'PY'
import sys
n, ports, workers = sys.argv[1:4]
rows = [l.split() for l in sys.argv[4:] if l.strip()]
metrics = [r for r in rows if r[0] == "c1m_metrics"]
rows = [r for r in rows if r[0] != "c1m_metrics"]
print(f"\n{int(n):,} idle connections, {ports} ports, {workers} server processes, loopback")
print(f"{'server':<14}{'user B/conn':>12}{'conn/s':>10}{'cpu s':>8}{'echoed':>10}{'rss before':>14}{'rss after':>14}{'ms':>8}")
for r in rows:
    print(f"{r[0]:<14}{r[1]:>12}{r[2]:>10}{r[3]:>8}{int(r[4]):>10,}{int(r[5]):>14,}{int(r[6]):>14,}{r[7]:>8}")
c1m, c = rows[0], rows[1]
def ratio(a, b):
    return f"{float(a)/float(b):.2f}" if float(b) else "inf"
print(f"ratio c1m/C: user B/conn {float(c1m[1]) - float(c[1]):+.2f} B ({ratio(c1m[1], c[1])}x), conn/s {ratio(c1m[2], c[2])}x, cpu {ratio(c1m[3], c[3])}x")
if len(rows) > 2:
    h = rows[2]
    print(f"herd (--wake all) vs EPOLLEXCLUSIVE: conn/s {ratio(h[2], c1m[2])}x, cpu {ratio(h[3], c1m[3])}x")
for m in metrics:
    print(f"{m[0]:<14}{m[1]:>12}{m[2]:>10}{m[3]:>8}{int(m[4]):>10,}{int(m[5]):>14,}{int(m[6]):>14,}{m[7]:>8}")
    print(f"ratio with/without --metrics (scraped every second): conn/s {ratio(m[2], c1m[2])}x, cpu {ratio(m[3], c1m[3])}x (goal: conn/s >= 0.98x)")
ok = int(c1m[4]) == int(n) and float(c1m[1]) <= 64
print("c1m serve: " + ("PASS" if ok else "FAIL") + f": {int(c1m[4]):,}/{int(n):,} echoed, {c1m[1]} B of user memory per idle connection (target <= 64)")
PY
