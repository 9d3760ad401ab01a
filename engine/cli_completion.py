"""`headway completion bash`: a completion script generated from the parser itself.

Generated rather than written by hand, so every command and option added to the parser
completes without anyone remembering to update a script.
"""

from __future__ import annotations

import argparse


def _words(parser: argparse.ArgumentParser, path: str, tree: dict[str, list[str]]) -> None:
    """Fills `tree` with, for each command path ("" for the top), the words that may follow."""
    words: list[str] = []
    for action in parser._actions:
        words += [option for option in action.option_strings if option.startswith("--")]
        if not action.option_strings and action.choices and action.nargs is None:
            words += [str(choice) for choice in action.choices]
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                _words(child, f"{path} {name}".strip(), tree)
    tree[path] = words


def bash_script(parser: argparse.ArgumentParser) -> str:
    tree: dict[str, list[str]] = {}
    _words(parser, "", tree)
    paths = "|".join(f'"{p}"' for p in sorted(tree) if p)
    cases = "\n".join(
        f'        "{path}") words="{" ".join(words)}" ;;' for path, words in sorted(tree.items())
    )
    return f"""# bash completion for headway: eval "$(headway completion bash)"
_headway() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" next word words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        next="${{path:+$path }}$word"
        case "$next" in
            {paths}) path="$next" ;;
        esac
    done
    case "$path" in
{cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _headway headway
"""


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parser: argparse.ArgumentParser
) -> None:
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description='bash: eval "$(headway completion bash)"; zsh: autoload -U bashcompinit '
        "&& bashcompinit, then the same.",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.set_defaults(run=lambda args: print(bash_script(parser), end=""))
