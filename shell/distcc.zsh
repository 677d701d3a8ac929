# distcc-auto for zsh: defines distcc_build and nothing else.
#
#   source /usr/local/share/distcc-auto/distcc.zsh
#   export DISTCC_AUTO_HOSTS="worker-1 worker-2 ssh://ci@worker-3"
#   distcc_build make all
#
# The same function as distcc.sh for bash; see there and distcc-auto(1).

distcc_build() {
    emulate -L zsh
    if (( $# == 0 )); then
        print -ru2 -- "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]"
        return 96
    fi
    (
        local bin dir try
        bin=${commands[distcc-auto]:-}
        if [[ -z $bin ]]; then
            # Not on PATH: look beside the file that defined this function,
            # installed (PREFIX/share/distcc-auto/../../bin) or in a source
            # checkout (target/release).
            zmodload -F zsh/parameter p:functions_source 2>/dev/null
            dir=${${functions_source[distcc_build]:-}:h}
            for try in $dir/../../bin/distcc-auto $dir/../target/release/distcc-auto; do
                if [[ -x $try ]]; then
                    bin=$try
                    break
                fi
            done
        fi
        if [[ -z $bin ]]; then
            print -ru2 -- "distcc_build: distcc-auto not found on PATH nor beside ${functions_source[distcc_build]:-the sourced file}"
            exit 96
        fi
        if [[ -n ${DISTCC_HOSTS:-} ]]; then
            print -ru2 -- "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build"
        fi

        # Stop our tunnels however the subshell ends; a signal becomes an
        # exit with the conventional status so that the EXIT trap runs.
        local pids= out njobs var
        # Cleanup runs to the end: a second Ctrl-C or the hangup of a
        # closing terminal must not cut it short.
        trap 'trap "" HUP INT TERM; if [[ -n $pids ]]; then DISTCC_AUTO_TUNNEL_PIDS=$pids $bin kill >/dev/null; pids=; fi' EXIT
        trap 'exit 129' HUP
        trap 'exit 130' INT
        trap 'exit 143' TERM

        out=$($bin env) || exit
        eval $out
        pids=${DISTCC_AUTO_TUNNEL_PIDS:-}
        njobs=$DISTCC_AUTO_JOBS

        # The build sees DISTCC_HOSTS, and no DISTCC_AUTO_* variable.
        for var in ${(k)parameters[(I)DISTCC_AUTO_*]}; do
            unset $var
        done
        export DISTCC_HOSTS
        export CCACHE_PREFIX=distcc
        "$@" -j $njobs
    )
}
