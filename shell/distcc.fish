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
    if builtin test (builtin count $argv) -eq 0
        # 96, as for every configuration problem (the reference driver's).
        builtin echo "distcc_build: usage: distcc_build BUILD-COMMAND [ARGS...]" >&2
        builtin return 96
    end
    # >>> find (`distcc-auto init` writes its own absolute path here)
    # `command` is a reserved word in fish: no function can take its
    # place. On PATH (`command -s` passes over functions), if PATH gives an
    # absolute path; else beside this file when it was sourced by an
    # absolute path: installed (PREFIX/share/distcc-auto/../../bin) or in a
    # source checkout (target/release). Never a path relative to the
    # current directory.
    builtin set -l bin (command -s distcc-auto)
    if not builtin string match -q -- '/*' "$bin"
        builtin set bin
        builtin set -l file (builtin functions --details distcc_build)
        if builtin string match -q -- '/*' "$file"
            builtin set -l dir (builtin path dirname -- $file)
            for try in $dir/../../bin/distcc-auto $dir/../target/release/distcc-auto
                if builtin test -x $try
                    builtin set bin (builtin path resolve -- $try)
                    break
                end
            end
        end
    end
    if builtin test -z "$bin"
        builtin echo "distcc_build: distcc-auto not found on PATH (as an absolute path) nor beside "(builtin functions --details distcc_build)" (source it by its absolute path)" >&2
        builtin return 96
    end
    # <<< find
    if builtin set -q DISTCC_HOSTS; and builtin test -n "$DISTCC_HOSTS"
        builtin echo "distcc_build: warning: DISTCC_HOSTS is set; distcc-auto replaces it for this build" >&2
    end
    command $bin exec -- $argv
end
