#!/usr/bin/env bash
# Speed and robustness bench of `c1m analyze` (run by hand, not in CI):
#  1. generates a seed-format client log of SIZE bytes (default 1 GiB) in a
#     temporary directory under /tmp (removed on exit),
#  2. times `grep -c connections:` and `c1m analyze` on it, RUNS times each,
#     alternating, from a warm page cache, and prints the best wall time of
#     each, their ratio, the CPU-time ratio and c1m's peak RSS,
#  3. runs the parser fuzz (tests/analyze_fuzz.rs, debug build so integer
#     overflows panic) with PROPTEST_CASES cases, bounded by FUZZ_SECS.
# Usage: benches/analyze.sh            (SIZE=... RUNS=... FUZZ_SECS=... to change)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-1073741824}
RUNS=${RUNS:-5}
FUZZ_SECS=${FUZZ_SECS:-180}
CASES=${PROPTEST_CASES:-20000}

cargo build --release --quiet
BIN=$PWD/target/release/c1m
dir=$(mktemp -d /tmp/c1m-analyze-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
log=$dir/seed-format.log

echo "generating $SIZE bytes of seed-format log in $log"
python3 benches/gen_seed_log.py "$log" "$SIZE"
echo "file: $(stat -c %s "$log") bytes, $(wc -l < "$log") lines"
cat "$log" > /dev/null   # warm the page cache

# GNU grep stops at the first match when its output is /dev/null, so its
# output goes to a file.
time_one() { # name command... -> appends "wall cpu maxrss_kb" to $dir/name
    local name=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$dir/$name.t" "$@" > "$dir/$name.out"
    awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$dir/$name.t" >> "$dir/$name.runs"
}
for _ in $(seq "$RUNS"); do
    time_one grep grep -c connections: "$log"
    time_one c1m "$BIN" analyze "$log"
done
best() { sort -n -k"$2" "$dir/$1.runs" | head -1 | awk -v k="$2" '{print $k}'; }
gw=$(best grep 1); cw=$(best c1m 1); gc=$(best grep 2); cc=$(best c1m 2)
rss=$(sort -n -k3 "$dir/c1m.runs" | tail -1 | awk '{print $3}')
echo "grep -c connections: -> $(cat "$dir/grep.out") lines"
echo "best of $RUNS: grep ${gw}s wall ${gc}s cpu | c1m analyze ${cw}s wall ${cc}s cpu, peak RSS ${rss} KB"
awk -v g="$gw" -v c="$cw" -v gc="$gc" -v cc="$cc" \
    'BEGIN {printf "ratio c1m/grep: wall %.2fx, cpu %.2fx\n", c / g, (gc > 0 ? cc / gc : 0)}'
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
head -8 "$dir/c1m.out"

echo "fuzz: PROPTEST_CASES=$CASES, at most ${FUZZ_SECS}s (debug build: overflow checks on)"
set +e
PROPTEST_CASES=$CASES timeout "$FUZZ_SECS" cargo test --quiet --test analyze_fuzz
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
    echo "fuzz: stopped at the time bound with no failure so far"
elif [ "$rc" -ne 0 ]; then
    echo "fuzz: FAILED (exit $rc)"; exit 1
else
    echo "fuzz: passed"
fi
