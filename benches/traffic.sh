#!/usr/bin/env bash
# Benchmark (not a test): traffic at a million. N connections held by
# `c1m serve` + `c1m flood`, then by the minimal C pair (benches/c/echo_server.c
# with as many processes as c1m serve had workers, benches/c/epoll_client.c
# with as many processes as c1m flood had shards, each process from its own
# source address), each pair in a private network namespace, in two phases:
#   (a) paced: every connection sends one line every S seconds for PHASE s
#       (c1m flood --message-interval S, the lab's machinery);
#   (b) saturating: every connection sends its next line as soon as the
#       previous echo is back, for PHASE s (one line in flight per
#       connection; c1m flood --message-interval 1ms).
# Every echoed byte is checked against what was sent (flood and the C client
# both compare byte by byte). Prints messages/s, echoed bytes/s, RTT
# p50/p99/p99.9, mismatched echoes and lines unanswered at the end, and the
# ratios c1m / C, from this one run.
#
#   benches/traffic.sh                       # N=1000000, S=10, PHASE=60
#   QUICK=1 benches/traffic.sh               # N=100000
#   N=2000 PHASE=5 S=1 benches/traffic.sh    # a tiny run that checks the script
#   EHASH=0 benches/traffic.sh               # both pairs on the host's TCP hash table
#   FIRST=c benches/traffic.sh               # the C pair first in each phase
#
# EHASH=auto (the default) gives every pair's namespace a TCP established hash
# table of its own (net.ipv4.tcp_child_ehash_entries, Linux 6.1+), one bucket
# per socket (the next power of two of 2N), as `c1m lab --ehash-entries auto`
# does: on the host's table (262,144 buckets on 24 GiB) a million connections
# put eight sockets in each bucket, and the lookup of every packet's socket
# was 15-20% of the host's CPU in both pairs' phases. Both pairs get the same
# table; the host's value is set for each `unshare` only and put back at once
# (and on exit). EHASH=N asks for N buckets.
#
# Both clients stop sending at the end of the phase and wait up to 2 s for the
# lines still out (the C client's drain; c1m flood's end of hold), so
# "unanswered" is lost lines on both sides. Loopback only,
# inside throwaway network namespaces; every process started here is ended
# here; the lab profile, when N needs it, is applied and rolled back on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# C1M_BIN=PATH: measure that c1m binary instead of building this checkout's.
C1M="${C1M_BIN:-$root/target/release/c1m}"
PORTS=20
BASE=8888

# --- one pair and one phase, inside its own network namespace ---
if [ "${1:-}" = "--in-ns" ]; then
    shift
    work=$1 side=$2 n=$3 phase=$4 interval=$5 srv=$6 cli=$7
    : > "$work/in_ns"   # the namespace exists: the parent puts the host's table size back
    cat /proc/sys/net/ipv4/tcp_ehash_entries > "$work/ehash" 2>/dev/null || true
    ip link set lo up
    pids=()
    stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
    trap stop EXIT
    cap=$(( n + n / 20 + 1 ))
    # The host's CPU five times a second, and when the client began its
    # phase (its first hold record; the C client's "done") and ended it:
    # the report gives how busy the host was through the phase.
    python3 "$here/cpu_sampler.py" "$work/cpu.log" &
    pids+=("$!")
    if [ "$side" = c1m ]; then marker='"phase":"hold"' out="$work/flood.out"; else marker='^done' out="$work/c_client.out"; fi
    ( until grep -q "$marker" "$out" 2>/dev/null; do sleep 0.1; done; date +%s.%N > "$work/phase_start" ) &
    pids+=("$!")
    if [ "$side" = c1m ]; then
        "$C1M" serve --bind 127.0.0.1 --port "$BASE" --ports "$PORTS" --max-connections "$cap" --json \
            > "$work/serve.out" 2>&1 &
        pids+=("$!")
        for _ in $(seq 1 600); do grep -q '"event":"start"' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
        # every shard its own source address, as the C processes
        last=$(( cli < 250 ? cli : 250 ))
        if [ "$interval" = 0 ]; then iv=1ms; else iv="${interval}s"; fi
        "$C1M" flood 127.0.0.1 "$BASE" --ports "$PORTS" --connections "$n" --window 3000 \
            --sources "127.0.1.1-127.0.1.$last" --hold "${phase}s" --message-interval "$iv" \
            --connect-timeout 30s --json > "$work/flood.out" 2>"$work/flood.err" || true
        grep '"event":"summary"' "$work/flood.out" | tail -1 > "$work/result.json"
        grep -o '"workers":[0-9]*' "$work/serve.out" | head -1 | cut -d: -f2 > "$work/workers"
    else
        "$(dirname "$work")/echo_server" 127.0.0.1 "$BASE" "$PORTS" "$srv" $(( (cap + srv - 1) / srv )) > "$work/c_server.out" 2>&1 &
        pids+=("$!")
        sleep 1
        "$(dirname "$work")/epoll_client" 127.0.0.1 "$BASE" "$PORTS" "$n" 3000 "$cli" "127.0.1.1+" "$phase" \
            "$(( interval * 1000 ))" > "$work/c_client.out" 2>"$work/c_client.err" || true
        grep '^traffic' "$work/c_client.out" > "$work/result.txt" || true
        grep '^done' "$work/c_client.out" > "$work/done.txt" || true
    fi
    date +%s.%N > "$work/phase_end"
    exit 0
fi

if [ "${QUICK:-0}" = 1 ]; then N=${N:-100000}; else N=${N:-1000000}; fi
S=${S:-10}
PHASE=${PHASE:-60}
work=$(mktemp -d /tmp/c1m-traffic-bench.XXXXXX)
state="$work/doctor.state.json"
applied=0
child_ehash=/proc/sys/net/ipv4/tcp_child_ehash_entries
host_ehash=""
cleanup() {
    if [ -n "$host_ehash" ]; then echo "$host_ehash" > "$child_ehash" || true; fi
    if [ "$applied" = 1 ]; then
        "$C1M" doctor --rollback --state "$state" > "$work/rollback.out" 2>&1 || cat "$work/rollback.out" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

[ -n "${C1M_BIN:-}" ] || (cd "$root" && cargo build --release --quiet)
gcc -O2 -Wall -o "$work/echo_server" "$here/c/echo_server.c"
gcc -O2 -Wall -o "$work/epoll_client" "$here/c/epoll_client.c"

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
"$C1M" doctor --role lab --target "$N" --server-ports "$PORTS" --sources 30 --json > "$work/doctor.json" 2>/dev/null || true
if ! python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['capacity']['fits'] else 1)" "$work/doctor.json"; then
    echo "# $N connections do not fit this host as it is: applying the lab profile (rolled back on exit)"
    "$C1M" doctor --role lab --target "$N" --apply --state "$state" > "$work/apply.out" 2>&1 || true
    applied=1
fi

# the namespaces' TCP established hash table (see the top)
EHASH=${EHASH:-auto}
ehash=0
if [ "$EHASH" = auto ]; then
    ehash=1; while [ "$ehash" -lt $(( 2 * N )) ]; do ehash=$(( ehash * 2 )); done
    [ "$ehash" -le 16777216 ] || ehash=16777216
elif [ "$EHASH" -gt 0 ] 2>/dev/null; then
    ehash=$EHASH
fi
if [ "$ehash" -gt 0 ] && [ ! -w "$child_ehash" ]; then
    echo "# $child_ehash cannot be set here (Linux 6.1+, root): both pairs use the host's TCP hash table"
    ehash=0
fi
# run ARGS... in a new network namespace, with the table asked for
in_ns() {
    local dir=$1; shift
    if [ "$ehash" -eq 0 ]; then unshare -n "$0" --in-ns "$dir" "$@"; return; fi
    host_ehash=$(cat "$child_ehash")
    echo "$ehash" > "$child_ehash"
    rm -f "$dir/in_ns"
    unshare -n "$0" --in-ns "$dir" "$@" &
    local pid=$! i
    for i in $(seq 1 200); do [ -e "$dir/in_ns" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    echo "$host_ehash" > "$child_ehash"
    host_ehash=""
    wait "$pid"
}
if [ "$ehash" -gt 0 ]; then
    echo "# each pair's namespace: a TCP established hash table of its own, $ehash buckets (EHASH=0: the host's)"
else
    echo "# both pairs' namespaces share the host's TCP established hash table ($(awk '{print $1}' /proc/sys/net/ipv4/tcp_ehash_entries) buckets)"
fi

# process counts: c1m's, the C pair gets the same
cli=$(( (N + 19936 - 1) / 19936 ))
srv=""
for phase_name in paced saturating; do
    if [ "$phase_name" = paced ]; then iv=$S; else iv=0; fi
    mkdir -p "$work/c1m.$phase_name" "$work/c.$phase_name"
    if [ -z "$srv" ] && [ "${FIRST:-c1m}" = c ]; then
        # the C pair runs first and needs c1m serve's worker count: c1m
        # serve's plan (src/reactor/mod.rs), the fewest processes under the
        # open-files limit less 64 spare and the listeners
        usable=$(( $(ulimit -Hn) - 64 - PORTS ))
        srv=$(( (N + N / 20 + 1 + usable - 1) / usable ))
    fi
    if [ "${FIRST:-c1m}" = c ]; then
        in_ns "$work/c.$phase_name" c "$N" "$PHASE" "$iv" "$srv" "$cli"
        in_ns "$work/c1m.$phase_name" c1m "$N" "$PHASE" "$iv" 0 "$cli"
        w=$(cat "$work/c1m.$phase_name/workers" 2>/dev/null || echo "?")
        [ "$w" = "$srv" ] || echo "# c1m serve ran $w workers, the C server $srv processes" >&2
    else
        in_ns "$work/c1m.$phase_name" c1m "$N" "$PHASE" "$iv" 0 "$cli"
        [ -n "$srv" ] || srv=$(cat "$work/c1m.$phase_name/workers" 2>/dev/null || echo 0)
        [ "${srv:-0}" -gt 0 ] || { echo "c1m serve did not start:" >&2; tail -5 "$work/c1m.$phase_name/serve.out" >&2; exit 1; }
        in_ns "$work/c.$phase_name" c "$N" "$PHASE" "$iv" "$srv" "$cli"
    fi
done

PYTHONPATH="$here" python3 - "$work" "$N" "$S" "$PHASE" "$srv" "$cli" <<'PY'
import json, sys
from cpu_sampler import window
work, n, s, phase, srv, cli = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
# the first echo of every connection (its verification, before the hold):
# "Hello Server: client --> k\n" for k = 0..n-1
first_echoes = sum(26 + len(str(k)) for k in range(n))
def c1m(ph):
    try:
        r = json.loads(open(f"{work}/c1m.{ph}/result.json").read())
    except (OSError, ValueError):
        return None
    d = r["details"]
    secs = d.get("hold_s") or float(phase)
    rtt = d.get("rtt_ms", {})
    bad = d.get("errors", {}).get("echo_mismatch", 0)
    return {"verified": d.get("verified", 0), "msgs": d["messages_answered"] / secs,
            "bytes": (d["bytes_in"] - first_echoes) / secs, "p50": rtt.get("p50_ms"), "p99": rtt.get("p99_ms"),
            "p999": rtt.get("p999_ms"), "bad": bad, "unanswered": d["messages_sent"] - d["messages_answered"] - bad}
def c(ph):
    try:
        t = dict(f.split("=") for f in open(f"{work}/c.{ph}/result.txt").read().split()[1:])
        done = open(f"{work}/c.{ph}/done.txt").read()
    except (OSError, ValueError):
        return None
    verified = int(done.split("verified=")[1].split()[0])
    secs = float(t["secs"])
    return {"verified": verified, "msgs": int(t["answered"]) / secs, "bytes": int(t["bytes"]) / secs,
            "p50": int(t["p50_us"]) / 1000, "p99": int(t["p99_us"]) / 1000, "p999": int(t["p999_us"]) / 1000,
            "bad": int(t["bad"]), "unanswered": int(t["lost"])}
def busy(side, ph):
    # how busy the host's two cores were through the phase, in %: from 2 s
    # after it began to 4 s before the client ended (its drain and exit)
    try:
        a = float(open(f"{work}/{side}.{ph}/phase_start").read()) + 2
        b = float(open(f"{work}/{side}.{ph}/phase_end").read()) - 4
        w = window(f"{work}/{side}.{ph}/cpu.log", a, b)
    except (OSError, ValueError):
        return None
    return 100 * w[0] / sum(w) if w and sum(w) else None
print(f"\n{n:,} connections on loopback, {srv} server processes, {cli} client processes; phases of {phase} s;"
      f" paced: one line per connection every {s} s; saturating: one line in flight per connection")
print(f"{'':<12}{'':<24}{'c1m':>14}{'C':>14}{'c1m / C':>10}")
for ph in ("paced", "saturating"):
    m, k = c1m(ph), c(ph)
    def row(name, key, fmt, ratio=True):
        a = m.get(key) if m else None
        b = k.get(key) if k else None
        r = f"{a / b:.2f}x" if ratio and a is not None and b else ""
        fa = fmt.format(a) if a is not None else "n/a"
        fb = fmt.format(b) if b is not None else "n/a"
        print(f"{ph:<12}{name:<24}{fa:>14}{fb:>14}{r:>10}")
    row("verified connections", "verified", "{:,}", False)
    row("messages/s", "msgs", "{:,.0f}")
    row("echoed bytes/s", "bytes", "{:,.0f}")
    row("RTT p50 (ms)", "p50", "{:.2f}")
    row("RTT p99 (ms)", "p99", "{:.2f}")
    row("RTT p99.9 (ms)", "p999", "{:.2f}")
    row("mismatched echoes", "bad", "{:,}", False)
    row("unanswered at the end", "unanswered", "{:,}", False)
    if m is not None:
        m["busy"] = busy("c1m", ph)
    if k is not None:
        k["busy"] = busy("c", ph)
    row("host CPU busy (%)", "busy", "{:.0f}")
print("(c1m echoed bytes/s: every byte flood read back in its hold, the first echoes excluded;"
      " C: bytes read in the phase)")
def table(side, ph):
    try:
        v = int(open(f"{work}/{side}.{ph}/ehash").read())
    except (OSError, ValueError):
        return "?"
    # negative: the namespace shares the host's table of that many buckets
    return f"the host's ({-v:,})" if v < 0 else f"its own ({v:,})"
print("(TCP established hash table, buckets: " + ", ".join(
    f"{side} {ph} {table(side, ph)}" for ph in ("paced", "saturating") for side in ("c1m", "c")) + ")")
PY
