# shellcheck shell=bash
# distcc-auto for bash: defines distcc_build and nothing else.
#
#   source /usr/local/share/distcc-auto/distcc.sh
#   export DISTCC_AUTO_HOSTS="worker-1 worker-2 ssh://ci@worker-3"
#   distcc_build make all
#
# distcc_build probes the workers with `distcc-auto env` and runs the build
# command with DISTCC_HOSTS set and `-j N` appended. Everything happens in a
# subshell, so nothing but the function itself is left in your shell, and
# the ssh tunnels that the probe started are stopped when the build ends,
# fails or is interrupted. See distcc-auto(1).

distcc_build() {
    if [ "$#" -eq 0 ]; then
        printf '%s\n' "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]" >&2
        return 96
    fi
    (
        __distcc_auto_bin=$(\command -v distcc-auto) || __distcc_auto_bin=
        if [ -z "$__distcc_auto_bin" ]; then
            # Not on PATH: look beside this file, installed (PREFIX/share/
            # distcc-auto/../../bin) or in a source checkout (target/release).
            case ${BASH_SOURCE[0]} in
                */*) __distcc_auto_dir=${BASH_SOURCE[0]%/*} ;;
                *) __distcc_auto_dir=. ;;
            esac
            for __distcc_auto_try in "$__distcc_auto_dir/../../bin/distcc-auto" \
                "$__distcc_auto_dir/../target/release/distcc-auto"; do
                if [ -x "$__distcc_auto_try" ]; then
                    __distcc_auto_bin=$__distcc_auto_try
                    break
                fi
            done
        fi
        if [ -z "$__distcc_auto_bin" ]; then
            printf '%s\n' "distcc_build: distcc-auto not found on PATH nor beside ${BASH_SOURCE[0]}" >&2
            exit 96
        fi
        if [ -n "${DISTCC_HOSTS:-}" ]; then
            printf '%s\n' "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build" >&2
        fi

        # Stop our tunnels however the subshell ends; a signal becomes an
        # exit with the conventional status so that the EXIT trap runs.
        __distcc_auto_pids=
        # shellcheck disable=SC2317 # called by the EXIT trap
        __distcc_auto_stop() {
            # Cleanup runs to the end: a second Ctrl-C or the hangup of a
            # closing terminal must not cut it short.
            trap '' HUP INT TERM
            if [ -n "$__distcc_auto_pids" ]; then
                DISTCC_AUTO_TUNNEL_PIDS=$__distcc_auto_pids "$__distcc_auto_bin" kill >/dev/null
                __distcc_auto_pids=
            fi
        }
        trap '__distcc_auto_stop' EXIT
        trap 'exit 129' HUP
        trap 'exit 130' INT
        trap 'exit 143' TERM

        __distcc_auto_env=$("$__distcc_auto_bin" env) || exit
        eval "$__distcc_auto_env"
        __distcc_auto_pids=${DISTCC_AUTO_TUNNEL_PIDS:-}
        __distcc_auto_jobs=$DISTCC_AUTO_JOBS

        # The build sees DISTCC_HOSTS, and no DISTCC_AUTO_* variable.
        for __distcc_auto_var in $(\compgen -v DISTCC_AUTO_); do
            \unset "$__distcc_auto_var"
        done
        export DISTCC_HOSTS
        export CCACHE_PREFIX=distcc
        "$@" -j "$__distcc_auto_jobs"
    )
}
