"""`python -m headway.engine` is the `headway` command."""

from .cli import main

main()
