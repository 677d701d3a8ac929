#!/usr/bin/env bash
# make bench: wall time of `distcc-auto env` against real distccd daemons on
# loopback, as a Markdown table (also written to target/bench.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet
bin=$root/target/release/distcc-auto
runs=${BENCH_RUNS:-30}

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Start a daemon on free loopback ports; prints its DISTCC_AUTO_HOSTS entry.
start_daemon() {
    local port stats
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000)) stats=$((port + 1))
        distccd --daemon --no-detach --listen 127.0.0.1 --allow 127.0.0.1/32 \
            --port "$port" --stats --stats-port "$stats" --jobs 2 --log-stderr 2>/dev/null &
        local pid=$!
        for _ in $(seq 50); do
            # shellcheck disable=SC2016 # $1 expands in the inner bash
            if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$stats" 2>/dev/null; then
                pids+=("$pid")
                entries+=("127.0.0.1:$port:$stats")
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
    done
    echo "bench: could not start distccd" >&2
    exit 1
}

# Median, min and max wall time in ms of $runs runs of `distcc-auto env`.
measure() {
    local hosts=$1 t0 t1 times=()
    for _ in $(seq "$runs"); do
        t0=$(date +%s%N)
        DISTCC_AUTO_HOSTS=$hosts "$bin" env >/dev/null 2>&1
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
        printf "%.2f | %.2f | %.2f", a[int((NR + 1) / 2)] / 1000, a[1] / 1000, a[NR] / 1000 }'
}

entries=()
table="| what | workers | median ms | min ms | max ms |
|---|---|---|---|---|"
for n in 1 4 8; do
    while [ "${#entries[@]}" -lt "$n" ]; do start_daemon; done
    row=$(measure "${entries[*]:0:$n}")
    table+="
| \`distcc-auto env\`, live distccd on loopback | $n | $row |"
done
dead="127.0.0.1:9:9"
row=$(measure "${entries[0]} $dead")
table+="
| \`distcc-auto env\`, 1 live + 1 refused port | 2 | $row |"

mkdir -p target
printf '%s\n\n%s runs each, %s, %s CPUs\n' "$table" "$runs" "$(uname -srm)" "$(nproc)" | tee target/bench.md
