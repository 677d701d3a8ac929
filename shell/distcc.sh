# shellcheck shell=bash
# Checked with `shellcheck --enable=all`, less one style rule:
# shellcheck disable=SC2250 # braces around every name would bury the logic
# distcc-auto for bash: defines distcc_build and nothing else.
#
#   source /usr/local/share/distcc-auto/distcc.sh
#   export DISTCC_AUTO_HOSTS="worker-1 worker-2 ssh://ci@worker-3"
#   distcc_build make all
#
# distcc_build probes the workers with `distcc-auto env` and runs the build
# command with DISTCC_HOSTS set and `-j N` added. See distcc-auto(1).
#
# It runs inside the user's shell, beside their functions, aliases, traps
# and options, so: every builtin is called as `\builtin NAME` (no alias or
# function can stand in for it); nothing relies on word splitting (IFS) or
# on an option being off; everything happens in a subshell, and the build
# runs in a subshell of its own, with the user's options and without any
# variable of ours, so that it can neither see nor break the cleanup.

# Sourced by a relative path: source it again by its absolute one, so that
# distcc_build still finds distcc-auto beside this file after a `cd`.
if [[ ${BASH_SOURCE[0]} != /* ]]; then
    \builtin source "$PWD/${BASH_SOURCE[0]}"
    \builtin return
fi

distcc_build() {
    if [[ $# -eq 0 ]]; then
        \builtin printf '%s\n' "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]" >&2
        \builtin return 2
    fi
    (
        # `type -P` searches PATH only: an alias or function named
        # distcc-auto is not a binary. Else look beside this file,
        # installed (PREFIX/share/distcc-auto/../../bin) or in a checkout.
        __distcc_auto_bin=$(\builtin type -P distcc-auto) || __distcc_auto_bin=
        if [[ -z $__distcc_auto_bin ]]; then
            __distcc_auto_dir=.
            if [[ ${BASH_SOURCE[0]} == */* ]]; then
                __distcc_auto_dir=${BASH_SOURCE[0]%/*}
            fi
            for __distcc_auto_try in "$__distcc_auto_dir/../../bin/distcc-auto" \
                "$__distcc_auto_dir/../target/release/distcc-auto"; do
                if [[ -x $__distcc_auto_try ]]; then
                    __distcc_auto_bin=$__distcc_auto_try
                    break
                fi
            done
        fi
        if [[ -z $__distcc_auto_bin ]]; then
            \builtin printf '%s\n' "distcc_build: distcc-auto not found on PATH nor beside ${BASH_SOURCE[0]}" >&2
            \builtin exit 96
        fi
        # Absolute, so that a build that changes directory cannot lose it.
        if [[ $__distcc_auto_bin != /* ]]; then
            __distcc_auto_bin=$PWD/$__distcc_auto_bin
        fi
        if [[ -n ${DISTCC_HOSTS-} ]]; then
            \builtin printf '%s\n' "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build" >&2
        fi

        # Stop the tunnels; cleanup runs to the end (a second Ctrl-C or a
        # closing terminal's hangup cannot cut it short).
        __distcc_auto_pids='' __distcc_auto_ids=''
        # shellcheck disable=SC2317 # called from traps
        __distcc_auto_stop() {
            \builtin trap '' HUP INT TERM
            if [[ -n $__distcc_auto_pids ]]; then
                DISTCC_AUTO_TUNNEL_PIDS=$__distcc_auto_pids DISTCC_AUTO_TUNNEL_IDS=$__distcc_auto_ids \
                    "$__distcc_auto_bin" kill >/dev/null || :
                __distcc_auto_pids=
            fi
        }
        # After the cleanup, die of the signal itself, so that a calling
        # script stops as it would for make (bash's cooperative exit).
        # shellcheck disable=SC2317 # called from traps
        __distcc_auto_raise() {
            __distcc_auto_stop
            \builtin trap - "$1"
            \builtin kill -s "$1" "$BASHPID"
            \builtin exit "$2" # the signal was ignored when bash started
        }
        # Until the PIDs are in hand a signal is only noted, so that it
        # cannot fall between `env` returning and the PIDs being kept.
        __distcc_auto_sig=
        \builtin trap '__distcc_auto_sig=HUP' HUP
        \builtin trap '__distcc_auto_sig=INT' INT
        \builtin trap '__distcc_auto_sig=TERM' TERM
        __distcc_auto_rc=0
        __distcc_auto_env=$("$__distcc_auto_bin" env) || __distcc_auto_rc=$?
        if [[ $__distcc_auto_rc -eq 0 ]]; then
            # Lines of `export NAME='VALUE';`: a function named export
            # must not receive them. No value holds "export ".
            \builtin eval "${__distcc_auto_env//export /\\builtin export }"
            __distcc_auto_pids=${DISTCC_AUTO_TUNNEL_PIDS-}
            __distcc_auto_ids=${DISTCC_AUTO_TUNNEL_IDS-}
        fi
        \builtin trap '__distcc_auto_stop' EXIT
        \builtin trap '__distcc_auto_raise HUP 129' HUP
        \builtin trap '__distcc_auto_raise INT 130' INT
        \builtin trap '__distcc_auto_raise TERM 143' TERM
        case $__distcc_auto_sig in
            HUP) __distcc_auto_raise HUP 129 ;;
            INT) __distcc_auto_raise INT 130 ;;
            TERM) __distcc_auto_raise TERM 143 ;;
            *) ;;
        esac
        if [[ $__distcc_auto_rc -ne 0 ]]; then
            \builtin exit "$__distcc_auto_rc"
        fi

        # -j N goes before the first `--` (what follows is the program's,
        # as in `cargo test -- --nocapture`), and not at all when the
        # command has a job count of its own or DISTCC_AUTO_APPEND_JOBS=0.
        __distcc_auto_cmd=()
        __distcc_auto_add=1
        if [[ ${DISTCC_AUTO_APPEND_JOBS-} == 0 ]]; then
            __distcc_auto_add=
        fi
        __distcc_auto_own=
        __distcc_auto_dd=
        for __distcc_auto_arg in "$@"; do
            if [[ -z $__distcc_auto_dd ]]; then
                case $__distcc_auto_arg in
                    -j | -j[0-9]* | --jobs | --jobs=*) __distcc_auto_own=1 ;;
                    --)
                        __distcc_auto_dd=1
                        if [[ -n $__distcc_auto_add && -z $__distcc_auto_own ]]; then
                            __distcc_auto_cmd+=(-j "$DISTCC_AUTO_JOBS")
                            __distcc_auto_add=
                        fi
                        ;;
                    *) ;;
                esac
            fi
            __distcc_auto_cmd+=("$__distcc_auto_arg")
        done
        if [[ -n $__distcc_auto_own && -n $__distcc_auto_add ]]; then
            \builtin printf '%s\n' "distcc_build: the command has its own job count; the probed -j $DISTCC_AUTO_JOBS is not used" >&2
        elif [[ -n $__distcc_auto_add && -z $__distcc_auto_dd ]]; then
            __distcc_auto_cmd+=(-j "$DISTCC_AUTO_JOBS")
        fi

        # The build: DISTCC_HOSTS, CCACHE_PREFIX when needed, the user's
        # options, and no DISTCC_AUTO_* or helper variable or function.
        (
            \builtin export DISTCC_HOSTS
            if [[ -n ${DISTCC_AUTO_CCACHE_PREFIX-} ]]; then
                # shellcheck disable=SC2034 # exported, for ccache
                \builtin export CCACHE_PREFIX="$DISTCC_AUTO_CCACHE_PREFIX"
            fi
            \builtin set -- "${__distcc_auto_cmd[@]}"
            \builtin unset -f __distcc_auto_stop __distcc_auto_raise
            \builtin trap - EXIT HUP INT TERM
            \builtin unset -v "${!DISTCC_AUTO_@}" "${!__distcc_auto_@}"
            "$@"
        ) || __distcc_auto_rc=$?

        # How many compiles ran remotely (and a warning when none did).
        "$__distcc_auto_bin" tally "$__distcc_auto_rc" || :
        __distcc_auto_stop
        \builtin exit "$__distcc_auto_rc"
    )
}
