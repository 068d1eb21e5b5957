#!/usr/bin/env bash
# Connections per second to one server: `c1m flood` against a minimal C
# non-blocking epoll client (benches/c/epoll_client.c, also serve.sh's
# client) doing the same work (connect, send the line, read and compare the
# echo, keep it open), same process count, one run each, as a ratio; plus
# the seed-style blocking
# client (connect + usleep(500), one process) for the before/after.
# The server is benches/c/echo_server.c on 127.0.0.1, 20 ports, sharded over
# processes (shared listeners, EPOLLEXCLUSIVE, at most 19,000 each) because
# of the 20,000 fd limit.
#
#   benches/flood.sh                 # N=100000 connections
#   N=50000 SEED_N=5000 BASE=16000 benches/flood.sh
#   DONE_WHEN=1 benches/flood.sh     # also: the issue's 200,000 run with --sources
#   METRICS=0 benches/flood.sh       # skip the with/without --metrics comparison
#
# With METRICS=1 (the default) every round also runs c1m flood with
# `--metrics 127.0.0.1:MPORT` while a scraper reads /metrics every second,
# and the median ratio with/without is printed (goal: at most 2% slower).
#
# Loopback only; every process it starts is ended on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
SEED_N=${SEED_N:-10000}
PORTS=20
WINDOW=${WINDOW:-1000}
BASE=${BASE:-16000}
METRICS=${METRICS:-1}
MPORT=${MPORT:-19391}
OUT=target/bench-flood
mkdir -p "$OUT"

cargo build --release -q
cc -O2 -Wall -o "$OUT/echo_server" benches/c/echo_server.c
cc -O2 -Wall -o "$OUT/epoll_client" benches/c/epoll_client.c
cc -O2 -Wall -o "$OUT/seed_client" benches/c/seed_client.c
C1M=target/release/c1m

for p in $(seq "$BASE" $((BASE + PORTS - 1))); do
    if ss -Htln "sport = :$p" | grep -q .; then
        echo "port $p is in use: pick another BASE" >&2
        exit 2
    fi
done

HARD=$(ulimit -Hn)
PER_PROC=$((HARD - 64))          # what `c1m flood --procs auto` uses
PROCS=$(( (N + PER_PROC - 1) / PER_PROC ))
BIGGEST=$N
if [ "${DONE_WHEN:-0}" = 1 ] && [ "$BIGGEST" -lt 200000 ]; then BIGGEST=200000; fi
SRV_PROCS=$(( BIGGEST / 15000 + 2 ))

SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
"$OUT/echo_server" 127.0.0.1 "$BASE" "$PORTS" "$SRV_PROCS" 19000 &
SRV=$!
sleep 0.5

settle() {
    # wait until the previous run's connections are gone from the server
    for _ in $(seq 60); do
        n=$(ss -Htn state established "( sport >= :$BASE and sport <= :$((BASE + PORTS - 1)) )" | wc -l)
        [ "$n" -lt 100 ] && break
        sleep 1
    done
    sleep 1
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, kernel $(uname -r), fd hard limit $HARD"
echo "# server: $SRV_PROCS processes on 127.0.0.1:$BASE..$((BASE + PORTS - 1)); clients: $N connections, $PROCS processes, window $WINDOW"

run_c() {
    settle
    local line
    line=$("$OUT/epoll_client" 127.0.0.1 "$BASE" "$PORTS" "$N" "$WINDOW" "$PROCS")
    echo "  C epoll client : $line" >&2
    sed -n 's/.*: \([0-9]*\)\/s$/\1/p' <<<"$line"
}
run_flood() { # [extra flood flags...]
    settle
    "$C1M" flood 127.0.0.1 "$BASE" --ports "$PORTS" --connections "$N" --window "$WINDOW" \
        --procs "$PROCS" --hold 0s --json "$@" >"$OUT/flood.jsonl" 2>"$OUT/flood.table"
    local sum rate
    sum=$(tail -n 1 "$OUT/flood.jsonl")
    rate=$(sed -n 's/.*"connect_rate":\([0-9.]*\).*/\1/p' <<<"$sum")
    echo "  c1m flood      : verified $(sed -n 's/.*"verified":\([0-9]*\).*/\1/p' <<<"$sum") of $N in $(sed -n 's/.*"connect_s":\([0-9.]*\).*/\1/p' <<<"$sum") s: ${rate%.*}/s" >&2
    echo "${rate%.*}"
}

# The machine is shared: alternate the two clients (and which goes first)
# over ROUNDS rounds; each round is one run of each, its ratio printed.
ROUNDS=${ROUNDS:-3}
c_rates=(); f_rates=(); m_rates=()
for r in $(seq "$ROUNDS"); do
    echo "round $r:"
    if [ $((r % 2)) = 1 ]; then
        c=$(run_c); f=$(run_flood)
    else
        f=$(run_flood); c=$(run_c)
    fi
    c_rates+=("$c"); f_rates+=("$f")
    awk -v f="$f" -v c="$c" 'BEGIN { printf "  ratio flood / C = %.2fx\n", f / c }'
    if [ "$METRICS" = 1 ]; then
        ( while sleep 1; do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$MPORT/metrics" || true; done ) &
        SCRAPER=$!
        m=$(run_flood --metrics "127.0.0.1:$MPORT")
        kill "$SCRAPER" 2>/dev/null || true; wait "$SCRAPER" 2>/dev/null || true
        m_rates+=("$m")
        awk -v f="$f" -v m="$m" 'BEGIN { printf "  ratio with/without --metrics = %.3fx\n", m / f }'
    fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
c_rate=$(median "${c_rates[@]}")
f_rate=$(median "${f_rates[@]}")
echo "median over $ROUNDS rounds: C epoll client ${c_rate}/s, c1m flood ${f_rate}/s"
if [ "$METRICS" = 1 ]; then
    m_rate=$(median "${m_rates[@]}")
    awk -v f="$f_rate" -v m="$m_rate" 'BEGIN { printf "c1m flood --metrics (scraped every second): %d/s, ratio with/without = %.3fx (goal >= 0.98x)\n", m, m / f }'
fi

settle
s_line=$("$OUT/seed_client" 127.0.0.1 "$BASE" "$PORTS" "$SEED_N")
s_rate=$(sed -n 's/.*: \([0-9]*\)\/s$/\1/p' <<<"$s_line")
echo "seed-style     : $s_line (1 process, blocking connect + usleep(500))"

awk -v f="$f_rate" -v c="$c_rate" -v s="$s_rate" 'BEGIN {
    printf "ratio flood / C epoll client = %.2fx (goal >= 1.0x)\n", f / c;
    printf "ratio flood / seed-style     = %.1fx\n", f / s }'

if [ "${DONE_WHEN:-0}" = 1 ]; then
    settle
    echo "# done-when: c1m flood 127.0.0.1 $BASE --connections 200000 --sources 127.0.0.2-127.0.0.20 (hold until SIGINT after the target)"
    rm -f "$OUT/done_when.jsonl"
    "$C1M" flood 127.0.0.1 "$BASE" --connections 200000 --sources 127.0.0.2-127.0.0.20 \
        --json >"$OUT/done_when.jsonl" 2>"$OUT/done_when.table" &
    FL=$!
    # Ctrl-C once every worker holds its share (phase hold in an interval line)
    for _ in $(seq 300); do
        grep -q '"phase":"hold"' "$OUT/done_when.jsonl" 2>/dev/null && break
        sleep 1
    done
    sleep 2
    kill -INT "$FL"
    rc=0; wait "$FL" || rc=$?
    d_sum=$(tail -n 1 "$OUT/done_when.jsonl")
    echo "done-when exit $rc: verified $(sed -n 's/.*"verified":\([0-9]*\).*/\1/p' <<<"$d_sum"), established $(sed -n 's/.*"established":\([0-9]*\).*/\1/p' <<<"$d_sum"), connect rate $(sed -n 's/.*"connect_rate":\([0-9.]*\).*/\1/p' <<<"$d_sum")/s over $(sed -n 's/.*"connect_s":\([0-9.]*\).*/\1/p' <<<"$d_sum") s"
    cat "$OUT/done_when.table"
fi
