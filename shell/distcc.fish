# distcc-auto for fish: defines distcc_build and nothing else.
#
#   source /usr/local/share/distcc-auto/distcc.fish
#   set -gx DISTCC_AUTO_HOSTS "worker-1 worker-2 ssh://ci@worker-3"
#   distcc_build make all
#
# fish has no subshells, so distcc_build hands the whole build to
# `distcc-auto exec`, which probes, runs the command with -j N (before the
# first --, none when it has its own job count) and DISTCC_HOSTS, says how
# many compiles ran remotely, stops the ssh tunnels however the build ends,
# and exits as the command did. The command must be a program: to run a
# fish function, write `distcc_build fish -c 'my_function'`. Builtins are
# called as `builtin NAME`, so that functions of the user's cannot stand in
# for them. See distcc-auto(1).

function distcc_build --description 'Probe the distcc workers, then run the build with -j N'
    if builtin test (count $argv) -eq 0
        builtin echo "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]" >&2
        builtin return 2
    end
    # On PATH (`command -s` passes over functions and aliases), else beside
    # this file: installed (PREFIX/share/distcc-auto/../../bin) or in a
    # source checkout (target/release).
    builtin set -l bin (command -s distcc-auto)
    if builtin test -z "$bin"
        builtin set -l dir (path dirname -- (functions --details distcc_build))
        for try in $dir/../../bin/distcc-auto $dir/../target/release/distcc-auto
            if builtin test -x $try
                builtin set bin (path resolve -- $try)
                break
            end
        end
    end
    if builtin test -z "$bin"
        builtin echo "distcc_build: distcc-auto not found on PATH nor beside "(functions --details distcc_build) >&2
        builtin return 96
    end
    if builtin set -q DISTCC_HOSTS; and builtin test -n "$DISTCC_HOSTS"
        builtin echo "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build" >&2
    end
    command $bin exec -- $argv
end
