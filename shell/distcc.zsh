# distcc-auto for zsh: defines distcc_build and nothing else.
#
#   source /usr/local/share/distcc-auto/distcc.zsh
#   export DISTCC_AUTO_HOSTS="worker-1 worker-2 ssh://ci@worker-3"
#   distcc_build make all
#
# The same function as distcc.sh for bash; see there and distcc-auto(1).
# Our part runs with zsh's own options (emulate -L zsh); the build runs in
# a subshell of its own with the user's options restored, and without any
# variable of ours, so that it can neither see nor break the cleanup.

# >>> resource (left out of `distcc-auto init` output)
# Sourced by a relative path: source it again by its absolute one, so that
# distcc_build still finds distcc-auto beside this file after a `cd`. (A
# file found on PATH is named by its full path already; a bare name is one
# found in the current directory.)
if [[ ${(%):-%x} != /* ]]; then
    \builtin source "$PWD/${(%):-%x}"
    \builtin return
fi
# <<< resource

distcc_build() {
    # The user's options, taken before ours replace them ([@]: right under
    # ksh_arrays too).
    \builtin typeset -a __distcc_auto_opts
    __distcc_auto_opts=("${(@kv)options[@]}")
    \builtin emulate -L zsh
    if (( $# == 0 )); then
        # 96, as for every configuration problem (the reference driver's).
        \builtin print -ru2 -- "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]"
        \builtin return 96
    fi
    (
        \builtin zmodload zsh/system zsh/parameter
        # >>> find (`distcc-auto init` writes its own absolute path here)
        # On PATH (walked here, as `whence -p` would, in its absolute
        # directories only: no aliases, functions or hashed names, and no
        # subshell), else beside this file when it was sourced by an
        # absolute path: installed (PREFIX/share/distcc-auto/../../bin) or
        # in a checkout. Never a path relative to the current directory.
        __distcc_auto_bin=
        for __distcc_auto_try in "${path[@]}"; do
            if [[ $__distcc_auto_try == /* && -f $__distcc_auto_try/distcc-auto && -x $__distcc_auto_try/distcc-auto ]]; then
                __distcc_auto_bin=$__distcc_auto_try/distcc-auto
                break
            fi
        done
        __distcc_auto_file=${functions_source[distcc_build]:-}
        if [[ -z $__distcc_auto_bin ]]; then
            if [[ $__distcc_auto_file == /* ]]; then
                for __distcc_auto_try in $__distcc_auto_file:h/../../bin/distcc-auto \
                    $__distcc_auto_file:h/../target/release/distcc-auto; do
                    if [[ -x $__distcc_auto_try ]]; then
                        __distcc_auto_bin=$__distcc_auto_try
                        break
                    fi
                done
            fi
        fi
        if [[ -z $__distcc_auto_bin ]]; then
            \builtin print -ru2 -- "distcc_build: distcc-auto not found on PATH (as an absolute path) nor beside ${__distcc_auto_file:-the sourced file} (source it by its absolute path)"
            \builtin exit 96
        fi
        # <<< find
        if [[ -n ${DISTCC_HOSTS:-} ]]; then
            \builtin print -ru2 -- "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build"
        fi

        # Stop the tunnels; cleanup runs to the end (a second Ctrl-C or a
        # closing terminal's hangup cannot cut it short).
        __distcc_auto_pids='' __distcc_auto_ids=''
        __distcc_auto_stop() {
            \builtin trap '' HUP INT TERM QUIT
            if [[ -n $__distcc_auto_pids ]]; then
                DISTCC_AUTO_TUNNEL_PIDS=$__distcc_auto_pids DISTCC_AUTO_TUNNEL_IDS=$__distcc_auto_ids \
                    $__distcc_auto_bin kill >/dev/null || :
                __distcc_auto_pids=
            fi
        }
        # After the cleanup, die of the signal itself, so that a calling
        # script stops as it would for make. zsh handles SIGHUP itself
        # (exit 1) even with the trap reset: that one is an exit 129.
        __distcc_auto_raise() {
            __distcc_auto_stop
            if [[ $1 != HUP ]]; then
                \builtin trap - $1
                \builtin kill -s $1 $sysparams[pid]
            fi
            \builtin exit $2 # or the signal was ignored when zsh started
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
        # `\builtin set -- ARGS;`: the build's arguments with -j N placed.
        # A live build's conductor watches this shell (it ends if the
        # shell is killed outright, before its trap could stop it).
        __distcc_auto_shell=$sysparams[pid]
        __distcc_auto_env=$(DISTCC_AUTO_SHELL_PID=$__distcc_auto_shell $__distcc_auto_bin env -- "$@") || __distcc_auto_rc=$?
        if (( __distcc_auto_rc == 0 )); then
            \builtin eval "$__distcc_auto_env"
            __distcc_auto_pids=${DISTCC_AUTO_TUNNEL_PIDS:-}
            __distcc_auto_ids=${DISTCC_AUTO_TUNNEL_IDS:-}
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
        esac
        if (( __distcc_auto_rc != 0 )); then
            \builtin exit $__distcc_auto_rc
        fi

        # The build: DISTCC_HOSTS (a live build: DISTCC_DIR, whose hosts
        # file the conductor keeps current, and the jobserver in MAKEFLAGS
        # for make and ninja), CCACHE_PREFIX when needed, the user's
        # options, and no DISTCC_AUTO_* or helper variable or function.
        (
            if [[ -n ${DISTCC_AUTO_DISTCC_DIR:-} ]]; then
                \builtin unset DISTCC_HOSTS
                \builtin export DISTCC_DIR=$DISTCC_AUTO_DISTCC_DIR
                if [[ -n ${DISTCC_AUTO_JOBSERVER_FIFO:-} ]]; then
                    # make 4.3 takes the jobserver as inherited descriptors.
                    \builtin exec {__distcc_auto_fd}<>$DISTCC_AUTO_JOBSERVER_FIFO
                    \builtin export MAKEFLAGS="$DISTCC_AUTO_MAKEFLAGS --jobserver-auth=$__distcc_auto_fd,$__distcc_auto_fd"
                elif [[ -n ${DISTCC_AUTO_MAKEFLAGS:-} ]]; then
                    \builtin export MAKEFLAGS=$DISTCC_AUTO_MAKEFLAGS
                fi
            else
                \builtin export DISTCC_HOSTS
            fi
            if [[ -n ${DISTCC_AUTO_CCACHE_PREFIX:-} ]]; then
                \builtin export CCACHE_PREFIX=$DISTCC_AUTO_CCACHE_PREFIX
            fi
            \builtin unfunction __distcc_auto_stop __distcc_auto_raise
            \builtin trap - EXIT HUP INT TERM QUIT
            # The user's options back, in three commands whose words are
            # expanded before they run (an option changed halfway, such as
            # ksh_arrays, would change what follows). Read-only options
            # refuse quietly, so err_exit and err_return come last.
            __distcc_auto_on=() __distcc_auto_off=() __distcc_auto_last=()
            for __distcc_auto_opt __distcc_auto_val in "${__distcc_auto_opts[@]}"; do
                case $__distcc_auto_opt:$__distcc_auto_val in
                    (errexit:on | errreturn:on) __distcc_auto_last+=($__distcc_auto_opt) ;;
                    (*:on) __distcc_auto_on+=($__distcc_auto_opt) ;;
                    (*) __distcc_auto_off+=($__distcc_auto_opt) ;;
                esac
            done
            \builtin unsetopt "${__distcc_auto_off[@]}" 2>/dev/null
            \builtin setopt "${__distcc_auto_on[@]}" 2>/dev/null
            if (( ${#__distcc_auto_last[@]} )); then
                \builtin setopt "${__distcc_auto_last[@]}"
            fi
            \builtin unset -m 'DISTCC_AUTO_*' '__distcc_auto_*'
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
        # the read ends at once. Else `__end` asks, or counts.
        __distcc_auto_end=
        __distcc_auto_dir=${DISTCC_AUTO_DISTCC_DIR:-}
        if [[ -n $__distcc_auto_dir && -p $__distcc_auto_dir/end && -p $__distcc_auto_dir/said ]]; then
            \builtin exec {__distcc_auto_w}<>$__distcc_auto_dir/said
            \builtin exec {__distcc_auto_r}<$__distcc_auto_dir/said
            \builtin exec {__distcc_auto_w}>&-
            \builtin print -r -- $__distcc_auto_rc 1<>$__distcc_auto_dir/end
            while IFS= \builtin read -r -t 60 -u $__distcc_auto_r __distcc_auto_line; do
                if [[ $__distcc_auto_line == stopped ]]; then
                    __distcc_auto_end=stopped
                    break
                fi
                \builtin print -ru2 -- $__distcc_auto_line
            done
            \builtin exec {__distcc_auto_r}<&-
        fi
        if [[ $__distcc_auto_end != stopped ]]; then
            __distcc_auto_end=$($__distcc_auto_bin __end $__distcc_auto_rc) || __distcc_auto_end=
        fi
        if [[ $__distcc_auto_end == stopped ]]; then
            __distcc_auto_pids=
        fi
        __distcc_auto_stop
        \builtin exit $__distcc_auto_rc
    )
}
