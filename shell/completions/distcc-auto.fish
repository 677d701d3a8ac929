# fish completion for distcc-auto; installed as
# share/fish/vendor_completions.d/distcc-auto.fish.

set -l commands env hosts kill exec tally
complete -c distcc-auto -f
complete -c distcc-auto -n "not __fish_seen_subcommand_from $commands" -a env -d 'probe, print DISTCC_HOSTS for eval'
complete -c distcc-auto -n "not __fish_seen_subcommand_from $commands" -a hosts -d 'show every worker and why'
complete -c distcc-auto -n "not __fish_seen_subcommand_from $commands" -a kill -d 'stop the ssh tunnels env handed over'
complete -c distcc-auto -n "not __fish_seen_subcommand_from $commands" -a exec -d 'run a command with -j N and DISTCC_HOSTS'
complete -c distcc-auto -n "not __fish_seen_subcommand_from $commands" -a tally -d 'count compiles since env'
complete -c distcc-auto -s v -l verbose -d 'trace every step on stderr'
complete -c distcc-auto -s h -l help -d 'print the help'
complete -c distcc-auto -s V -l version -d 'print the version'
complete -c distcc-auto -n '__fish_seen_subcommand_from env kill' -l shell -x -a 'sh bash zsh fish' -d 'the shell that reads the output'
complete -c distcc-auto -n '__fish_seen_subcommand_from kill' -l all -d "also end this user's persistent ssh masters"
complete -c distcc-auto -n '__fish_seen_subcommand_from hosts' -l json -d 'print one JSON document'
complete -c distcc-auto -n '__fish_seen_subcommand_from hosts' -l wide -d 'every column on one line'
complete -c distcc-auto -n '__fish_seen_subcommand_from hosts' -l check -d 'also compile a test file on each worker'
complete -c distcc-auto -n '__fish_seen_subcommand_from hosts' -l watch -d 'redraw every SECONDS until Ctrl-C'
complete -c distcc-auto -n '__fish_seen_subcommand_from exec' -l trace -r -F -d 'write the build timeline to FILE and FILE.svg'
complete -c distcc-auto -n '__fish_seen_subcommand_from exec' -F -a '(__fish_complete_subcommand --fcs-skip=2)'
