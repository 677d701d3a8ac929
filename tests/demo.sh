#!/usr/bin/env bash
# make demo: a throwaway distccd on free loopback ports, `distcc-auto hosts`,
# then a real build of demo/ through `distcc_build make`, and the daemon's
# own statistics showing that the compiles ran there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

sh tests/deps.sh
cargo build --release --quiet
PATH="$root/target/release:$PATH"

work=$(mktemp -d)
daemon=
cleanup() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

stats() { # the daemon's stats reply, read as a person would with a socket
    # shellcheck disable=SC2016 # $1 expands in the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat <&3' _ "$stats_port"
}

# Free ports: try random ones until a daemon binds both.
for _ in $(seq 20); do
    port=$((20000 + RANDOM % 40000)) stats_port=$((port + 1))
    distccd --daemon --no-detach --listen 127.0.0.1 --allow 127.0.0.1/32 \
        --port "$port" --stats --stats-port "$stats_port" --jobs 4 \
        --log-stderr 2>>"$work/distccd.log" &
    daemon=$!
    for _ in $(seq 50); do
        if stats >/dev/null 2>&1; then break 2; fi
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.1
    done
    kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; daemon=
done
[ -n "$daemon" ] || { echo "demo: could not start distccd" >&2; exit 1; }

export DISTCC_AUTO_HOSTS="localhost:$port:$stats_port 127.0.0.1:9"
export DISTCC_DIR="$work/distcc-client"
mkdir "$DISTCC_DIR"
echo "== DISTCC_AUTO_HOSTS=\"$DISTCC_AUTO_HOSTS\" (port 9 has no daemon)"
echo "== distcc-auto hosts"
distcc-auto hosts
echo
echo "== eval \"\$(distcc-auto env)\""
distcc-auto env 2>/dev/null
echo
before=$(stats | awk '$1 == "dcc_compile_ok" { print $2 }')
cp -r demo "$work/src"
echo "== distcc_build make (in a copy of demo/)"
# shellcheck source=shell/distcc.sh
source shell/distcc.sh
(cd "$work/src" && distcc_build make)
"$work/src/hello"
after=$(stats | awk '$1 == "dcc_compile_ok" { print $2 }')
echo
echo "== the daemon compiled $((after - before)) files (dcc_compile_ok $before -> $after)"
[ $((after - before)) -eq 4 ]
