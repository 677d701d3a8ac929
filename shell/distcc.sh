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

# >>> resource (left out of `distcc-auto init` output)
# Sourced by a relative path: source it again by its absolute one, so that
# distcc_build still finds distcc-auto beside this file after a `cd`. (A
# file found on PATH is named by its full path already; a bare name is one
# found in the current directory.)
if [[ ${BASH_SOURCE[0]} != /* ]]; then
    \builtin source "$PWD/${BASH_SOURCE[0]}"
    \builtin return
fi
# <<< resource

distcc_build() {
    if [[ $# -eq 0 ]]; then
        # 96, as for every configuration problem (the reference driver's).
        \builtin printf '%s\n' "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]" >&2
        \builtin return 96
    fi
    (
        # >>> find (`distcc-auto init` writes its own absolute path here)
        # On PATH (walked here, as `type -P` would, in its absolute
        # directories only: no aliases, functions or hashed names, and no
        # subshell), else beside this file when it was sourced by an
        # absolute path: installed (PREFIX/share/distcc-auto/../../bin) or
        # in a checkout. Never a path relative to the current directory.
        __distcc_auto_bin=
        __distcc_auto_path=${PATH-}:
        while [[ -n $__distcc_auto_path ]]; do
            __distcc_auto_try=${__distcc_auto_path%%:*}
            __distcc_auto_path=${__distcc_auto_path#*:}
            if [[ $__distcc_auto_try == /* && -f $__distcc_auto_try/distcc-auto && -x $__distcc_auto_try/distcc-auto ]]; then
                __distcc_auto_bin=$__distcc_auto_try/distcc-auto
                break
            fi
        done
        if [[ -z $__distcc_auto_bin ]]; then
            if [[ ${BASH_SOURCE[0]} == /* ]]; then
                for __distcc_auto_try in "${BASH_SOURCE[0]%/*}/../../bin/distcc-auto" \
                    "${BASH_SOURCE[0]%/*}/../target/release/distcc-auto"; do
                    if [[ -x $__distcc_auto_try ]]; then
                        __distcc_auto_bin=$__distcc_auto_try
                        break
                    fi
                done
            fi
        fi
        if [[ -z $__distcc_auto_bin ]]; then
            \builtin printf '%s\n' "distcc_build: distcc-auto not found on PATH (as an absolute path) nor beside ${BASH_SOURCE[0]} (source it by its absolute path)" >&2
            \builtin exit 96
        fi
        # <<< find
        if [[ -n ${DISTCC_HOSTS-} ]]; then
            \builtin printf '%s\n' "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build" >&2
        fi

        # Stop the tunnels; cleanup runs to the end (a second Ctrl-C or a
        # closing terminal's hangup cannot cut it short).
        __distcc_auto_pids='' __distcc_auto_ids=''
        # shellcheck disable=SC2317 # called from traps
        __distcc_auto_stop() {
            \builtin trap '' HUP INT TERM QUIT
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
        \builtin trap '__distcc_auto_sig=QUIT' QUIT
        __distcc_auto_rc=0
        # `env -- COMMAND` prints `\builtin export NAME='VALUE';` lines and
        # `\builtin set -- ARGS;`: the build's arguments with -j N placed
        # (before the first `--`; none when the command has its own job
        # count or DISTCC_AUTO_APPEND_JOBS=0), every word quoted.
        # A live build's conductor watches this shell (it ends if the
        # shell is killed outright, before its trap could stop it).
        __distcc_auto_shell=$BASHPID
        __distcc_auto_env=$(DISTCC_AUTO_SHELL_PID=$__distcc_auto_shell "$__distcc_auto_bin" env -- "$@") || __distcc_auto_rc=$?
        if [[ $__distcc_auto_rc -eq 0 ]]; then
            \builtin eval "$__distcc_auto_env"
            __distcc_auto_pids=${DISTCC_AUTO_TUNNEL_PIDS-}
            __distcc_auto_ids=${DISTCC_AUTO_TUNNEL_IDS-}
        fi
        \builtin trap '__distcc_auto_stop' EXIT
        \builtin trap '__distcc_auto_raise HUP 129' HUP
        \builtin trap '__distcc_auto_raise INT 130' INT
        \builtin trap '__distcc_auto_raise TERM 143' TERM
        \builtin trap '__distcc_auto_raise QUIT 131' QUIT
        case $__distcc_auto_sig in
            HUP) __distcc_auto_raise HUP 129 ;;
            INT) __distcc_auto_raise INT 130 ;;
            TERM) __distcc_auto_raise TERM 143 ;;
            QUIT) __distcc_auto_raise QUIT 131 ;;
            *) ;;
        esac
        if [[ $__distcc_auto_rc -ne 0 ]]; then
            \builtin exit "$__distcc_auto_rc"
        fi

        # The build: DISTCC_HOSTS (a live build: DISTCC_DIR, whose hosts
        # file the conductor keeps current, and the jobserver in MAKEFLAGS
        # for make and ninja), CCACHE_PREFIX when needed, the user's
        # options, and no DISTCC_AUTO_* or helper variable or function.
        (
            # shellcheck disable=SC2034 # exported, for distcc and make
            if [[ -n ${DISTCC_AUTO_DISTCC_DIR-} ]]; then
                \builtin unset -v DISTCC_HOSTS
                \builtin export DISTCC_DIR="$DISTCC_AUTO_DISTCC_DIR"
                if [[ -n ${DISTCC_AUTO_JOBSERVER_FIFO-} ]]; then
                    # make 4.3 takes the jobserver as inherited descriptors.
                    \builtin exec {__distcc_auto_fd}<>"$DISTCC_AUTO_JOBSERVER_FIFO"
                    \builtin export MAKEFLAGS="$DISTCC_AUTO_MAKEFLAGS --jobserver-auth=$__distcc_auto_fd,$__distcc_auto_fd"
                elif [[ -n ${DISTCC_AUTO_MAKEFLAGS-} ]]; then
                    \builtin export MAKEFLAGS="$DISTCC_AUTO_MAKEFLAGS"
                fi
            else
                \builtin export DISTCC_HOSTS
            fi
            if [[ -n ${DISTCC_AUTO_CCACHE_PREFIX-} ]]; then
                # shellcheck disable=SC2034 # exported, for ccache
                \builtin export CCACHE_PREFIX="$DISTCC_AUTO_CCACHE_PREFIX"
            fi
            \builtin unset -f __distcc_auto_stop __distcc_auto_raise
            \builtin trap - EXIT HUP INT TERM QUIT
            \builtin unset -v "${!DISTCC_AUTO_@}" "${!__distcc_auto_@}"
            "$@"
        ) || __distcc_auto_rc=$?

        # What the build did (and a warning when nothing ran remotely). A
        # live build's conductor then stops itself and its tunnels, and
        # says "stopped": nothing is left for `kill`. It is asked without
        # starting a process: the status goes to its FIFO `end`; it prints
        # what to say on the stderr it shares with us, then "stopped" on
        # `said` (any other line there is passed on). `said` is opened for
        # reading and writing (which cannot block), then for reading, and
        # the first closed: with the conductor gone, no writer is left and
        # the read ends at once. Only `exec` itself closes a descriptor for
        # good (`\builtin exec` restores it after), so a function of that
        # name is dropped first (in this subshell only); if it cannot be,
        # the read's time limit ends the wait. Else `__end` asks, or counts.
        __distcc_auto_end=
        __distcc_auto_dir=${DISTCC_AUTO_DISTCC_DIR-}
        if [[ -n $__distcc_auto_dir && -p $__distcc_auto_dir/end && -p $__distcc_auto_dir/said ]]; then
            \builtin exec {__distcc_auto_w}<>"$__distcc_auto_dir/said"
            \builtin exec {__distcc_auto_r}<"$__distcc_auto_dir/said"
            \builtin unset -f exec 2>/dev/null || :
            if ! \builtin declare -F exec >/dev/null; then
                \exec {__distcc_auto_w}>&-
            fi
            \builtin printf '%s\n' "$__distcc_auto_rc" 1<>"$__distcc_auto_dir/end"
            while IFS= \builtin read -r -t 60 -u "$__distcc_auto_r" __distcc_auto_line; do
                if [[ $__distcc_auto_line == stopped ]]; then
                    __distcc_auto_end=stopped
                    break
                fi
                \builtin printf '%s\n' "$__distcc_auto_line" >&2
            done
            if ! \builtin declare -F exec >/dev/null; then
                \exec {__distcc_auto_r}<&-
            fi
        fi
        if [[ $__distcc_auto_end != stopped ]]; then
            __distcc_auto_end=$("$__distcc_auto_bin" __end "$__distcc_auto_rc") || __distcc_auto_end=
        fi
        if [[ $__distcc_auto_end == stopped ]]; then
            __distcc_auto_pids=
        fi
        __distcc_auto_stop
        \builtin exit "$__distcc_auto_rc"
    )
}
