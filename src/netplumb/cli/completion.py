"""Shell completion: ``netplumb completion bash|zsh`` prints a script that asks netplumb itself.

The script calls ``netplumb __complete CWORD WORDS...`` on each TAB; ``candidates`` walks the
very parser the commands use, so completion knows every command and option there is, and
fills in values from netplumb's records: guest names (hosts and the projects' Docker
services), networks, projects, topology files and interfaces.
"""

from __future__ import annotations

import argparse
import os

from netplumb.cli.parser import subcommands

# What a positional argument or an option's value names, by its dest or option.
GUESTS = {"name", "names", "guest", "target", "linking", "link"}
NETWORKS = {"network"}
PROJECTS = {"project"}
FILES = {"file", "output"}
INTERFACES = {"hostif", "lan"}


def _names(kind: str) -> list[str]:
    from netplumb import state

    if kind == "guests":
        return sorted({*state.names("hosts"), *state.names("docker")})
    if kind == "networks":
        return state.names("networks")
    if kind == "projects":
        return state.names("projects")
    if kind == "interfaces":
        try:
            return sorted(os.listdir("/sys/class/net"))
        except OSError:
            return []
    if kind == "files":
        here = sorted(f for f in os.listdir(".") if not f.startswith("."))
        return [f for f in here if f.endswith((".yaml", ".yml")) or os.path.isdir(f)]
    return []


def _kind_of(action: argparse.Action, parser: argparse.ArgumentParser) -> str | None:
    dest = action.dest
    if dest in NETWORKS or (dest == "name" and parser.prog.endswith("network rm")):
        return "networks"
    if dest in PROJECTS:
        return "projects"
    if dest in FILES:
        return "files"
    if dest in INTERFACES:
        return "interfaces"
    if dest in GUESTS:
        return "guests"
    return None


def _values(action: argparse.Action, parser: argparse.ArgumentParser) -> list[str]:
    if action.choices is not None and not isinstance(action.choices, dict):
        return [str(c) for c in action.choices]
    kind = _kind_of(action, parser)
    return _names(kind) if kind else []


def _option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    for action in parser._actions:
        if word in action.option_strings:
            return action
    return None


def candidates(root: argparse.ArgumentParser, words: list[str], index: int) -> list[str]:
    """What may stand at ``words[index]`` (``words[0]`` is the program), by its prefix."""
    parser = root
    positional = 0
    current = words[index] if index < len(words) else ""
    i = 1
    expecting: argparse.Action | None = None
    while i < index:
        word = words[i]
        if expecting is not None:
            expecting = None
        elif word == "--":
            return []  # a command line of the guest's own follows
        elif word.startswith("-"):
            action = _option(parser, word)
            if action is not None and action.nargs != 0:
                expecting = action
        elif word in subcommands(parser):
            parser = subcommands(parser)[word]
            positional = 0
        else:
            positional += 1
        i += 1
    if expecting is not None:
        out = _values(expecting, parser)
    elif current.startswith("-"):
        out = [o for a in parser._actions for o in a.option_strings]
    else:
        subs = subcommands(parser)
        out = [s for s in subs if not s.startswith("_")]
        if not subs:
            plain = [a for a in parser._actions if not a.option_strings]
            if plain:
                action = plain[min(positional, len(plain) - 1)]
                out = _values(action, parser)
    return [c for c in out if c.startswith(current)]


BASH = """# netplumb completion for bash: source it, or put it in /etc/bash_completion.d/netplumb
_netplumb() {
    local IFS=$'\\n'
    COMPREPLY=($(netplumb __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
}
complete -o default -F _netplumb netplumb
"""

ZSH = """#compdef netplumb
# netplumb completion for zsh: put it on $fpath as _netplumb, or source it after compinit
_netplumb() {
    local -a found
    found=(${(f)"$(netplumb __complete $((CURRENT - 1)) ${words[@]} 2>/dev/null)"})
    compadd -a found
}
compdef _netplumb netplumb
"""


def script(shell: str) -> str:
    return BASH if shell == "bash" else ZSH


def register(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], root: argparse.ArgumentParser
) -> None:
    """Add ``completion`` and the hidden ``__complete``, which completes against ``root`` (the
    whole tree, passed in: this module must not import the commands that import it)."""
    p = subs.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description=(
            "Print a completion script: commands, options, guest names, networks, projects, "
            "topology files and interfaces complete with TAB."
        ),
        epilog=(
            "example:\n  netplumb completion bash > /etc/bash_completion.d/netplumb\n"
            "  source <(netplumb completion zsh)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=cmd_completion)
    hidden = subs.add_parser("__complete")
    hidden.add_argument("cword", type=int)
    hidden.add_argument("words", nargs=argparse.REMAINDER)
    hidden.set_defaults(func=lambda args: cmd_complete(args, root))
    # not listed in ``netplumb --help``: drop the pseudo-action argparse made for it
    subs._choices_actions = [a for a in subs._choices_actions if a.dest != "__complete"]


def cmd_completion(args: argparse.Namespace) -> int:
    import sys

    sys.stdout.write(script(args.shell))
    return 0


def cmd_complete(args: argparse.Namespace, root: argparse.ArgumentParser) -> int:
    for word in candidates(root, list(args.words), int(args.cword)):
        print(word)
    return 0
