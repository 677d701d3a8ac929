# bash completion for distcc-auto; installed as
# share/bash-completion/completions/distcc-auto.
# shellcheck shell=bash

_distcc_auto() {
    local cur prev cmd word
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]:-}
    cmd=
    for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case $word in
            env | hosts | kill | tally | exec | help) cmd=$word; break ;;
            *) ;;
        esac
    done
    if [[ $cmd == exec ]]; then
        # After `exec`: a command and its arguments.
        local i
        for ((i = 1; i < COMP_CWORD; i++)); do
            [[ ${COMP_WORDS[i]} == exec ]] && break
        done
        if [[ $prev == --trace ]]; then
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        elif ((COMP_CWORD == i + 1)) && [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--trace" -- "$cur")
        elif ((COMP_CWORD == i + 1)) || { [[ ${COMP_WORDS[i + 1]} == --trace ]] && ((COMP_CWORD == i + 3)); }; then
            mapfile -t COMPREPLY < <(compgen -c -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return
    fi
    if [[ $prev == --shell ]]; then
        mapfile -t COMPREPLY < <(compgen -W "sh bash zsh fish" -- "$cur")
        return
    fi
    local opts="-v --verbose -h --help -V --version"
    case $cmd in
        '') opts="env hosts kill exec tally $opts" ;;
        env) opts="--shell $opts" ;;
        kill) opts="--all --shell $opts" ;;
        hosts) opts="--json --wide --check --watch $opts" ;;
        *) ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -F _distcc_auto distcc-auto
