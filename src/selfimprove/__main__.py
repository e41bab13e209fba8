"""`python -m selfimprove` runs the CLI."""

from selfimprove.cli import main

main()
