#!/usr/bin/env bash
# Benchmark (not a test): the whole C1M experiment on this machine.
#  1. `c1m lab --target N` (serve + 3 flood clients + analyze, in a private
#     network namespace): time to target, connect rate, memory per connection,
#     from its report.json.
#  2. The same experiment with minimal C programs at the same process counts:
#     benches/c/echo_server.c with as many processes as c1m serve had
#     workers, and benches/c/epoll_client.c with as many processes as the
#     flood clients had shards (each with its own source address, the same
#     3,000 connects in flight in all as the three flood clients' windows),
#     also in a private network namespace. Time to target is wall time from starting
#     the clients to the last client's "done"; memory is sampled then.
#  Prints both and the ratios, from this one run: by default two rounds,
#  c1m first in the first and the C programs first in the second (the side
#  that runs first pays more for the VM's memory, see cold_start), then
#  each round's ratio and the medians.
#
#   benches/lab.sh                 # N=1000000, ROUNDS=2, FIRST=alt
#   N=100000 benches/lab.sh
#   N=1500000 benches/lab.sh       # needs the lab profile: applies it (fs.file-max...)
#                                  # for both runs and rolls it back on exit
#   HOSTS=1 benches/lab.sh         # also c1m lab --hosts at the same target (namespace
#                                  # hosts on a bridge), its time to target next to step 1's
#   TARGETS="100000 500000 1000000 1500000" benches/lab.sh
#                                  # the cost curve: steps 1 and 2 at each target, then one
#                                  # `curve` line per target (time to target, connect rate,
#                                  # kernel and user bytes per connection, c1m / C time);
#                                  # CURVE_SVG=FILE also draws them (benches/curve_svg.py)
#   ROUNDS=4 benches/lab.sh        # steps 1 and 2 four times, then the ratio of each
#                                  # round and the medians: one round's ratio moves by
#                                  # +-10% on this VM (ROUNDS=1: one round, c1m first)
#   FIRST=c1m benches/lab.sh       # c1m first in every round (or FIRST=c: the C
#                                  # programs); the default, FIRST=alt, swaps the order
#                                  # every round, so an even ROUNDS puts each side first
#                                  # equally often. The first side meets memory that no
#                                  # run just freed (see cold_start): dearer to touch
#   WARMUP=0 benches/lab.sh        # no warm-up: by default two runs of the C programs
#                                  # at each target go first, their results dropped. On
#                                  # this VM a ramp's cost falls over the first runs after
#                                  # the machine was idle (the C programs at 1M: 36.5,
#                                  # 34.8, then 32.8 s), and with one warm-up run the
#                                  # first measured round was the dear one in four runs
#                                  # of four (1.00-1.06x against 0.82-0.90x after)
#   LAB_OPTS="--defer-accept" benches/lab.sh   (or LAB_OPTS="--fast-open")
#                                  # extra c1m lab flags (one switch measured on its own)
#   SETTLE=25 benches/lab.sh       # rest 25 s (default 1) after each cold start
#   PIN=1 benches/lab.sh           # hold one page in every free-page-reporting block
#                                  # before each run (benches/c/pin_memory.c; see below)
#   TOGETHER=1 ROUNDS=3 benches/lab.sh
#                                  # c1m lab and the C programs at the same time, each
#                                  # at N in its own namespace: both meet the same memory
#                                  # and the same CPUs, so the ratio of their processes'
#                                  # CPU up to the target does not move with the VM (an
#                                  # A/A run of c1m against itself: within 1%); times are
#                                  # shared and only shown. A process's CPU leaves out the
#                                  # softirq time (loopback receive, TCP timers) both share
#
# Loopback only, inside throwaway network namespaces; every process started
# here is ended here; anything applied is rolled back on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

# CPU (user + system ticks) process $1 has used; 0 when it is gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ticks every kernel thread (a child of kthreadd: ksoftirqd, kworkers,
# kswapd...) has used: work a run causes outside its own processes. (A
# process that ends between the glob and the read fails cat: not an error.)
kthread_ticks() { { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{ sub(/^.*\) /, ""); if ($2 == 2) t += $12 + $13 } END { print t + 0 }'; }

# --- the C run, inside its own network namespace (re-executed by unshare) ---
if [ "${1:-}" = "--c-run" ]; then
    shift
    work=$1 n=$2 ports=$3 base=$4 srv_procs=$5 cli_procs=$6
    ip link set lo up
    pids=()
    cleanup_c() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
    trap cleanup_c EXIT
    cap=$(( (n + n / 20 + srv_procs - 1) / srv_procs ))
    "$work/echo_server" 127.0.0.1 "$base" "$ports" "$srv_procs" "$cap" > "$work/c_server.out" 2>&1 &
    spid=$!; pids+=("$spid")
    sleep 1
    avail() { awk '/^MemAvailable:/ {print $2}' /proc/meminfo; }
    mem0=$(avail)
    kt0=$(kthread_ticks)
    t0=$(date +%s.%N)
    left=$n
    window=$(( 3000 / cli_procs )); [ "$window" -ge 1 ] || window=1
    for i in $(seq 0 $(( cli_procs - 1 ))); do
        per=$(( (left + cli_procs - i - 1) / (cli_procs - i) )); left=$(( left - per ))
        src="127.0.$(( 1 + i / 250 )).$(( 1 + i % 250 ))"
        "$work/epoll_client" 127.0.0.1 "$base" "$ports" "$per" "$window" 1 "$src" 600 > "$work/c_client$i.out" 2>&1 &
        pids+=("$!")
    done
    deadline=$(( $(date +%s) + 900 ))
    while :; do
        done_n=$(cat "$work"/c_client*.out 2>/dev/null | grep -c '^done' || true)
        [ "$done_n" -ge "$cli_procs" ] && break
        [ "$(date +%s)" -gt "$deadline" ] && { echo "C clients did not finish" >&2; exit 1; }
        sleep 0.05
    done
    t1=$(date +%s.%N)
    kt1=$(kthread_ticks)
    mem1=$(avail)
    # TOGETHER=1: hold until c1m lab holds too, so that this side's mass
    # close does not load the other side's ramp
    if [ -n "${TOGETHER_GO:-}" ]; then
        until [ -e "$TOGETHER_GO" ] || [ "$(date +%s)" -gt "$deadline" ]; do sleep 0.2; done
    fi
    rss=0
    for p in $spid $(pgrep -P "$spid" || true); do
        rss=$(( rss + $(awk '{print $2}' "/proc/$p/statm" 2>/dev/null || echo 0) * 4096 ))
    done
    crss=0
    for p in "${pids[@]:1}"; do
        crss=$(( crss + $(awk '{print $2}' "/proc/$p/statm" 2>/dev/null || echo 0) * 4096 ))
    done
    # CPU (user + system ticks) each side's processes used up to here
    cpu_of() { local t=0 p; for p in "$@"; do t=$(( t + $(cpu_ticks "$p") )); done; echo "$t"; }
    kids=()
    for p in "${pids[@]:1}"; do mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$p" || true); done
    scpu=$(cpu_of "$spid" $(pgrep -P "$spid" || true))
    ccpu=$(cpu_of "${pids[@]:1}" "${kids[@]}")
    verified=$(cat "$work"/c_client*.out | grep '^done' | sed 's/.*verified=\([0-9]*\).*/\1/' | awk '{s+=$1} END {print s+0}')
    echo "c_result $verified $t0 $t1 $mem0 $mem1 $rss $crss $scpu $ccpu $(( kt1 - kt0 ))"
    exit 0
fi

N=${N:-1000000}
TARGETS=${TARGETS:-$N}
ROUNDS=${ROUNDS:-2}
PORTS=20
BASE=8888
CLIENTS=3
work=$(mktemp -d /tmp/c1m-lab-bench.XXXXXX)
# C1M_BIN=PATH: measure that c1m binary (e.g. an older commit's build) instead
# of building this checkout's.
C1M="${C1M_BIN:-$root/target/release/c1m}"
# doctor (the capacity check, the profile and its rollback) is always this
# checkout's.
DOCTOR="$root/target/release/c1m"
state="$work/doctor.state.json"
applied=0
pin_pid=
cleanup() {
    if [ -n "$pin_pid" ]; then kill -TERM "$pin_pid" 2>/dev/null || true; wait "$pin_pid" 2>/dev/null || true; fi
    if [ "$applied" = 1 ]; then
        "$DOCTOR" doctor --rollback --state "$state" > "$work/rollback.out" 2>&1 || cat "$work/rollback.out" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

[ -n "${C1M_BIN:-}" ] || (cd "$root" && cargo build --release --quiet)
gcc -O2 -Wall -o "$work/echo_server" "$here/c/echo_server.c"
gcc -O2 -Wall -o "$work/epoll_client" "$here/c/epoll_client.c"
gcc -O2 -Wall -o "$work/pin_memory" "$here/c/pin_memory.c"


echo "# $(date -u +%FT%TZ) $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), fd hard limit $(ulimit -Hn)${LAB_OPTS:+, c1m lab $LAB_OPTS}"
if [ "${PIN:-0}" = 1 ] && [ -r /sys/module/page_reporting/parameters/page_reporting_order ]; then
    echo "# free page reporting at order $(cat /sys/module/page_reporting/parameters/page_reporting_order): one page held in every block before each run (PIN=1, benches/c/pin_memory.c)"
fi
# The largest target decides whether the lab profile is needed (applied
# once, for every target, rolled back on exit).
largest=$(printf '%s\n' $TARGETS | sort -n | tail -1)
# TOGETHER=1: both sides at once, twice the connections on the host
[ "${TOGETHER:-0}" = 1 ] && largest=$(( largest * 2 ))
# doctor exits 1 when any check fails; only the capacity verdict matters here.
"$DOCTOR" doctor --role lab --target "$largest" --server-ports "$PORTS" --sources 30 --json > "$work/doctor.json" 2>/dev/null || true
if ! python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['capacity']['fits'] else 1)" "$work/doctor.json"; then
    echo "# target $largest does not fit this host as it is: applying the lab profile (rolled back on exit)"
    "$DOCTOR" doctor --role lab --target "$largest" --apply --state "$state" > "$work/apply.out" 2>&1 || true
    applied=1
    grep -E 'applied|failed' "$work/apply.out" | head -20 | sed 's/^/#   /' || true
fi

# This VM hands free memory back to its host (virtio-balloon free page
# reporting): a free block of 2^page_reporting_order pages is reported within
# seconds, and the next write to any page of it is a hypervisor fault, about
# 8 us a page against 1.3 us for memory the host still backs (measured with
# a 4 GiB touch loop, 2026-12-03). A million connections write ~6 GB of
# fresh slab, and how much of it each run finds backed depends on what the
# run before left and when: seconds either way, for c1m or for C. PIN=1
# holds one page in every reporting block before each run
# (benches/c/pin_memory.c, 1/512 of memory), so no block is ever wholly
# free and none is reported. It did not make the runs equal: memory idle
# for a minute was slow to touch even so (each pass took 50-60 s for 22
# GiB), both sides got slower, and the ratio moved as much (README).
# Which side pays it is mostly a matter of order: profiled at 1M
# (2026-12-03, perf record -a), whichever side ran first spent 1.4-4x the
# other's samples in allocate_slab and inode_init_once (the first write to
# each new slab page, in socket() and, as softirq, in the server's
# sk_clone_lock), and that alone was the gap: without those two symbols
# c1m's ramp took 0.93-0.96x the C pair's samples whichever went first.
# Hence FIRST=alt and the warm-up runs (WARMUP) below.
pin_memory() {
    [ "${PIN:-0}" = 1 ] && [ -r /sys/module/page_reporting/parameters/page_reporting_order ] || return 0
    local passes=0
    if [ -z "$pin_pid" ]; then
        "$work/pin_memory" 1024 > "$work/pin.out" 2>&1 &
        pin_pid=$!
    else
        passes=$(grep -c '^pass' "$work/pin.out" || true)
        kill -USR1 "$pin_pid"
    fi
    while [ "$(grep -c '^pass' "$work/pin.out" || true)" -le "$passes" ]; do
        kill -0 "$pin_pid" 2>/dev/null || { echo "pin_memory ended:" >&2; cat "$work/pin.out" >&2; exit 1; }
        sleep 0.2
    done
    [ "${SLABS:-0}" = 1 ] && tail -1 "$work/pin.out" | sed 's/^/pin_memory /' >&2
    return 0
}

# The kernel's slab caches (TCP sockets, socket inodes, files) grow with the
# first run and keep part of what they grew, so the second run could find
# slabs ready that the first paid for. Both runs start from the same state:
# written-back page cache dropped and every slab cache shrunk to what is in
# use. (It did not close the gap at 1M: profiled both ways, c1m's ramp took
# 1.22x the C pair's CPU samples with it, 1.21x without; see the README.)
# COLD=0 skips it.
cold_start() {
    [ "${COLD:-1}" = 1 ] || { pin_memory; return 0; }
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    for f in /sys/kernel/slab/*/shrink; do echo 1 > "$f" 2>/dev/null || true; done
    sleep "${SETTLE:-1}"
    pin_memory
    if [ "${SLABS:-0}" = 1 ]; then
        # what the previous run left in the socket caches (active/total objects)
        awk '/^(TCP|sock_inode_cache|proc_inode_cache|dentry|filp|eventpoll_epi) /{printf "%s %s/%s  ", $1, $2, $3} END {print ""}' \
            /proc/slabinfo | sed 's/^/slabs before the run: /' >&2
    fi
}

# The host's CPU, sampled five times a second while one side runs (into
# file $1), so the comparison can say what each ramp cost in CPU seconds:
# busy (user, system, interrupts), idle, and stolen (the hypervisor ran
# something else on this VM's cores). Stops when killed.
cpu_sampler() {
    # the previous round's file would end the wait below at once
    rm -f "$1"
    python3 "$here/cpu_sampler.py" "$1" &
    sampler_pid=$!
    # python starts slowly from a dropped page cache: the run starts once
    # the first sample is in
    while [ ! -s "$1" ]; do sleep 0.05; done
}
stop_sampler() { kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; }

# Once the lab says it is holding (its target reached), the CPU (user +
# system ticks) its processes used so far, by what they are (serve,
# serve-worker, flood, flood-shard, lab), one line each into $2.
role_cpu() {
    local kt0
    kt0=$(kthread_ticks)
    until grep -q 'lab: holding' "$1" 2>/dev/null; do
        [ -e "$2.stop" ] && return 0
        sleep 0.1
    done
    {
        # by the binary's name (C1M_BIN may name a copy), as the kernel
        # keeps it: its first 15 bytes
        for p in $(pgrep -x "$(basename "$C1M" | cut -c1-15)"); do
            echo "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | awk '{print $2}') $(cpu_ticks "$p")"
        done
        echo "kthreads $(( $(kthread_ticks) - kt0 ))"
    } > "$2.tmp"
    mv "$2.tmp" "$2"
}

# The report c1m lab wrote (into $report), or the end of its output and exit.
lab_report() {
    report=$(ls -d "$work"/reports/*/ 2>/dev/null | head -1)report.json
    [ -f "$report" ] || { echo "c1m lab wrote no report:" >&2; tail -20 "$work/lab.out" >&2; exit 1; }
}

# The process counts of both sides at target $1, from c1m's own sizing
# rules (serve: the target plus 5% over workers of ulimit -Hn - 64 sockets;
# flood: each client's third the same way), so that the C programs can run
# first; checked against c1m's report once it ran (check_procs).
plan_procs() {
    local N=$1 share
    per_proc=$(( $(ulimit -Hn) - 64 ))
    srv_procs=$(( (N + (N + 19) / 20 + per_proc - 1) / per_proc ))
    cli_procs=0
    for share in $(python3 -c "n, k = $N, $CLIENTS; print(*[n // k + (1 if i < n % k else 0) for i in range(k)])"); do
        cli_procs=$(( cli_procs + (share + per_proc - 1) / per_proc ))
    done
}
check_procs() {
    python3 - "$report" "$srv_procs" "$cli_procs" "$per_proc" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
cli = sum(math.ceil(c["target"] / int(sys.argv[4])) for c in r["clients"])
if r["server_workers"] != int(sys.argv[2]) or cli != int(sys.argv[3]):
    print(f"(note: c1m ran {r['server_workers']} server and {cli} client processes, the C programs {sys.argv[2]} and {sys.argv[3]})")
PY
}

# Step 1 alone: c1m lab at target $1 from a cold start, its host CPU
# sampled and its processes' CPU taken when it holds.
run_c1m() {
    local N=$1
    cold_start
    cpu_sampler "$work/cpu_c1m.log"
    rm -f "$work/roles" "$work/roles.stop" "$work/lab.out"
    role_cpu "$work/lab.out" "$work/roles" &
    roles_pid=$!
    # shellcheck disable=SC2086
    "$C1M" lab --target "$N" --clients "$CLIENTS" --ports "$PORTS" --port "$BASE" --hold 5s \
        --report "$work/reports" ${LAB_OPTS:-} > "$work/lab.out" 2>&1 || true
    touch "$work/roles.stop"
    wait "$roles_pid" 2>/dev/null || true
    stop_sampler
    lab_report
}

# Step 2 alone: the C programs at target $1, same process counts, from a
# cold start; their result line into $c_line.
run_c() {
    local N=$1
    cold_start
    cpu_sampler "$work/cpu_c.log"
    c_line=$(unshare -n "$0" --c-run "$work" "$N" "$PORTS" "$BASE" "$srv_procs" "$cli_procs" | grep '^c_result')
    stop_sampler
}

# Steps 1 and 2 at target $1, in round $2; prints the comparison and
# appends one curve line to $work/curve.txt. The side that runs first meets
# memory the other has not just freed (see cold_start), so FIRST says which
# goes first: c1m, c, or alt (the default: c1m in odd rounds, C in even
# ones, so that ROUNDS=2k puts each side first k times).
run_target() {
    local N=$1 round=${2:-1} first=${FIRST:-alt}
    rm -rf "$work/reports"
    if [ "${TOGETHER:-0}" = 1 ]; then
        run_together "$N"
        return
    fi
    plan_procs "$N"
    [ "$first" = alt ] && { [ $(( round % 2 )) = 1 ] && first=c1m || first=c; }
    if [ "$first" = c ]; then
        run_c "$N"
        run_c1m "$N"
    else
        run_c1m "$N"
        run_c "$N"
    fi
    check_procs

    # SANDWICH=1: c1m lab once more after the C run, to see whether the
    # order of the runs (what the first leaves behind) moves the ratio
    if [ "${SANDWICH:-0}" = 1 ]; then
        cold_start
        # shellcheck disable=SC2086
        "$C1M" lab --target "$N" --clients "$CLIENTS" --ports "$PORTS" --port "$BASE" --hold 5s \
            --report "$work/reports2" ${LAB_OPTS:-} > "$work/lab2.out" 2>&1 || true
        report2=$(ls -d "$work"/reports2/*/ | head -1)report.json
        python3 - "$report2" >&2 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"c1m lab again after the C run: {r['time_to_target_s']:.1f} s, {r['connect_rate_per_s']:,.0f}/s")
PY
        rm -rf "$work/reports2"
    fi

    print_table "$N"
    echo "(round $round: $( [ "$first" = c ] && echo "the C programs" || echo "c1m lab") ran first)"
}

# TOGETHER=1: steps 1 and 2 at once, from one cold start, with the process
# counts of plan_procs (checked against c1m's report). c1m lab holds
# $TOGETHER_HOLD (60 s) and the C programs hold until c1m lab holds, so
# neither side's mass close falls in the other's ramp.
run_together() {
    local N=$1 go
    plan_procs "$N"
    go="$work/together.go"
    rm -f "$go" "$work/roles" "$work/roles.stop" "$work/lab.out"
    cold_start
    cpu_sampler "$work/cpu_c1m.log"
    cp "$work/cpu_c1m.log" "$work/cpu_c.log"
    role_cpu "$work/lab.out" "$work/roles" &
    roles_pid=$!
    (
        until grep -q 'lab: holding' "$work/lab.out" 2>/dev/null || [ -e "$work/roles.stop" ]; do sleep 0.2; done
        touch "$go"
    ) &
    go_pid=$!
    # shellcheck disable=SC2086
    "$C1M" lab --target "$N" --clients "$CLIENTS" --ports "$PORTS" --port "$BASE" --hold "${TOGETHER_HOLD:-60s}" \
        --report "$work/reports" ${LAB_OPTS:-} > "$work/lab.out" 2>&1 &
    lab_pid=$!
    c_line=$(TOGETHER_GO="$go" unshare -n "$0" --c-run "$work" "$N" "$PORTS" "$BASE" "$srv_procs" "$cli_procs" | grep '^c_result' || true)
    wait "$lab_pid" || true
    touch "$work/roles.stop" "$go"
    wait "$roles_pid" "$go_pid" 2>/dev/null || true
    stop_sampler
    [ -n "$c_line" ] || { echo "the C programs gave no result" >&2; exit 1; }
    lab_report
    check_procs
    print_table "$N"
}

# The table of one run (c1m's report, the C run's c_result line), and its
# curve line.
print_table() {
    local N=$1
    PYTHONPATH="$here" TOGETHER="${TOGETHER:-0}" python3 - "$report" "$N" "$srv_procs" "$cli_procs" "$c_line" "$work/curve.txt" "$work/cpu_c1m.log" "$work/cpu_c.log" "$work/roles" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
from cpu_sampler import window as cpu
n, srv, cli = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
_, verified, t0, t1, mem0, mem1, rss, crss, scpu, ccpu, ckt = sys.argv[5].split()
verified, t = int(verified), float(t1) - float(t0)
c_kernel = max(0.0, (int(mem0) - int(mem1)) * 1024 - int(rss) - int(crss)) / max(verified, 1)
c = {"time": t, "rate": verified / t, "kernel": c_kernel, "srv_user": int(rss) / max(verified, 1), "verified": verified}
m = {"time": r["time_to_target_s"], "rate": r["connect_rate_per_s"], "kernel": r["kernel_bytes_per_connection"],
     "srv_user": r["server_user_bytes_per_connection"], "verified": r["verified"]}
print(f"\n{n:,} concurrent connections on loopback, {srv} server processes, {cli} client processes, {r['clients'].__len__()} clients x 20 ports")
print(f"{'':<36}{'c1m lab':>14}{'C programs':>14}{'c1m / C':>10}")
def row(name, a, b, fmt, ratio=True):
    ra = f"{a / b:.2f}x" if (ratio and a is not None and b) else ""
    fa = fmt(a) if a is not None else "n/a"
    print(f"{name:<36}{fa:>14}{fmt(b):>14}{ra:>10}")
together = os.environ.get("TOGETHER") == "1"
row("verified connections", m["verified"], c["verified"], lambda v: f"{v:,}", False)
row("time to target (s)", m["time"], c["time"], lambda v: f"{v:.1f}")
row("connect rate (/s)", m["rate"], c["rate"], lambda v: f"{v:,.0f}")
if not together:
    # both sides' memory moves MemAvailable when they run at once
    row("kernel memory per connection (B)", m["kernel"], c["kernel"], lambda v: f"{v:,.0f}")
row("server RSS per connection (B)", m["srv_user"], c["srv_user"], lambda v: f"{v:.1f}", False)
start = r.get("ramp_started_unix")
mc = cpu(sys.argv[7], start, start + m["time"] if start is not None and m["time"] else None)
cc = cpu(sys.argv[8], float(t0), float(t1))
if together:
    mc = cc = None  # one host, both ramps: the processes' own CPU below
if mc and cc:
    row("host CPU busy in the ramp (s)", mc[0], cc[0], lambda v: f"{v:.1f}")
    row("host CPU idle in the ramp (s)", mc[1], cc[1], lambda v: f"{v:.1f}", False)
    row("host CPU stolen in the ramp (s)", mc[2], cc[2], lambda v: f"{v:.1f}", False)
roles = {}
try:
    for line in open(sys.argv[9]):
        name, ticks = line.split()
        roles[name] = roles.get(name, 0) + int(ticks) / 100
except (OSError, ValueError):
    roles = {}
proc = None
if roles:
    ms, mcl = roles.get("serve", 0) + roles.get("serve-worker", 0), roles.get("flood", 0) + roles.get("flood-shard", 0)
    row("server processes' CPU (s)", ms, int(scpu) / 100, lambda v: f"{v:.1f}")
    row("client processes' CPU (s)", mcl, int(ccpu) / 100, lambda v: f"{v:.1f}")
    proc = (ms + mcl + roles.get("lab", 0), (int(scpu) + int(ccpu)) / 100)
    row("all processes' CPU (s)", proc[0], proc[1], lambda v: f"{v:.1f}")
    if not together and "kthreads" in roles:
        # at once, the kernel threads work for both: not split
        row("kernel threads' CPU (s)", roles["kthreads"], int(ckt) / 100, lambda v: f"{v:.1f}")
    print(f"(processes' CPU up to the target, user + system; c1m lab itself: {roles.get('lab', 0):.1f} s)")
if together:
    print("(TOGETHER=1: both sides ran at once on the same CPUs: compare the CPU, not the times)")
print("(c1m: server RSS above its empty baseline; C server: whole RSS, it keeps nothing per connection)")
# which TCP established hash table c1m lab's namespace had (the C programs'
# `unshare -n` always shares the host's)
ehash = next((n for n in r.get("notes", []) if "TCP established hash table" in n), None)
if ehash:
    print(f"(c1m lab: {ehash.split(' (')[0].replace('the lab' + chr(39) + 's namespace ', 'its namespace ')}; the C programs' shares the host's)")
print(f"c1m lab: {'reached' if r['reached'] else 'NOT reached'}; findings: {', '.join(f['id'] for f in r['findings']) or 'none'}")
# user bytes per connection: c1m serve's own plus every flood client's RSS
user = (r.get("server_user_bytes_per_connection") or 0) + (r.get("client_user_bytes_per_connection") or 0)
na = lambda v, f: "n/a" if v is None else f.format(v)
with open(sys.argv[6], "a") as out:
    out.write(f"curve target={n} reached={'yes' if r['reached'] else 'no'} verified={m['verified']} "
              f"time_s={na(m['time'], '{:.1f}')} rate={na(m['rate'], '{:.0f}')} kernel_B={na(m['kernel'], '{:.0f}')} "
              f"user_B={user:.0f} c_time_s={t:.1f} c_rate={c['rate']:.0f} c_kernel_B={c_kernel:.0f} "
              f"ratio={na(m['time'] / t if m['time'] and t else None, '{:.2f}')}"
              f"{f' cpu_s={mc[0]:.1f} c_cpu_s={cc[0]:.1f}' if mc and cc else ''}"
              f"{f' proc_cpu_s={proc[0]:.1f} c_proc_cpu_s={proc[1]:.1f}' if proc else ''}\n")
PY
}

# ROUNDS > 1: the medians and each round's ratio at target $1, from the
# curve lines its rounds appended.
rounds_summary() {
    python3 - "$1" "$work/curve.txt" <<'PY'
import statistics, sys
n = sys.argv[1]
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[2])]
rows = [r for r in rows if r["target"] == n and r["time_s"] != "n/a"]
ratios = [float(r["ratio"]) for r in rows]
c1m = statistics.median(float(r["time_s"]) for r in rows)
c = statistics.median(float(r["c_time_s"]) for r in rows)
print(f"\nrounds at {int(n):,}: c1m / C time per round {' '.join(f'{x:.2f}x' for x in ratios)}; "
      f"median time c1m {c1m:.1f} s, C {c:.1f} s: {c1m / c:.2f}x; median of the rounds' ratios {statistics.median(ratios):.2f}x")
cpu = [float(r["cpu_s"]) / float(r["c_cpu_s"]) for r in rows if "cpu_s" in r and float(r["c_cpu_s"]) > 0]
if cpu:
    print(f"host CPU busy in the ramps, c1m / C per round {' '.join(f'{x:.2f}x' for x in cpu)}; median {statistics.median(cpu):.2f}x")
proc = [float(r["proc_cpu_s"]) / float(r["c_proc_cpu_s"]) for r in rows if "proc_cpu_s" in r and float(r["c_proc_cpu_s"]) > 0]
if proc:
    print(f"processes' CPU up to the target, c1m / C per round {' '.join(f'{x:.2f}x' for x in proc)}; median {statistics.median(proc):.2f}x")
PY
}

: > "$work/curve.txt"
for target in $TARGETS; do
    # WARMUP=K (not with TOGETHER=1): K runs of the C programs at the
    # target first, their results dropped, so that the first measured side,
    # like the second, starts right after a run at the target freed its
    # memory (see FIRST above and cold_start)
    if [ "${TOGETHER:-0}" != 1 ]; then
        plan_procs "$target"
        for _ in $(seq "${WARMUP:-2}"); do
            run_c "$target"
            echo "# warm-up: the C programs at $target, dropped ($(awk '{printf "%.1f s", $4 - $3}' <<< "$c_line"))"
        done
    fi
    for round in $(seq "$ROUNDS"); do
        run_target "$target" "$round"
    done
    if [ "$ROUNDS" -gt 1 ]; then rounds_summary "$target"; fi
done
if [ "$(wc -w <<< "$TARGETS")" -gt 1 ]; then
    echo
    echo "# cost per target (c1m lab; c_*: the C programs at the same process counts; ratio: c1m / C time)"
    cat "$work/curve.txt"
    if [ -n "${CURVE_SVG:-}" ]; then
        python3 "$here/curve_svg.py" "$work/curve.txt" "$CURVE_SVG"
        echo "# curve drawn in $CURVE_SVG"
    fi
fi

# 3. HOSTS=1: the same target between namespace hosts (c1m lab --hosts: a
#    server host and 3 client hosts on a bridge, 198.18.0.0/15), next to the
#    loopback lab of step 1, from this one run.
if [ "${HOSTS:-0}" = 1 ]; then
    "$C1M" lab --hosts --target "$N" --clients "$CLIENTS" --ports "$PORTS" --port "$BASE" --hold 5s \
        --report "$work/hosts" > "$work/hosts.out" 2>&1 || true
    hreport=$(ls -d "$work"/hosts/*/ 2>/dev/null | head -1)report.json
    [ -f "$hreport" ] || { echo "c1m lab --hosts wrote no report:" >&2; tail -20 "$work/hosts.out" >&2; exit 1; }
    python3 - "$report" "$hreport" <<'PY'
import json, sys
lo, h = (json.load(open(p)) for p in sys.argv[1:3])
print(f"\n{'':<36}{'loopback':>14}{'--hosts':>14}{'hosts / lo':>12}")
for name, key, fmt in [("verified connections", "verified", "{:,}"),
                       ("time to target (s)", "time_to_target_s", "{:.1f}"),
                       ("connect rate (/s)", "connect_rate_per_s", "{:,.0f}"),
                       ("kernel memory per connection (B)", "kernel_bytes_per_connection", "{:,.0f}")]:
    a, b = lo.get(key), h.get(key)
    ratio = f"{b / a:.2f}x" if a and b and key != "verified" else ""
    print(f"{name:<36}{fmt.format(a) if a is not None else 'n/a':>14}{fmt.format(b) if b is not None else 'n/a':>14}{ratio:>12}")
for row in h["hosts"]:
    print(f"  {row['host']:<10} {row['connections']:>10,} connections, failures: {row['failures'] or 'none'}")
print(f"c1m lab --hosts: {'reached' if h['reached'] else 'NOT reached'}; findings: {', '.join(f['id'] for f in h['findings']) or 'none'}")
PY
fi
