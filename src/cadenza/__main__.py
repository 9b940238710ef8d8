"""`python -m cadenza` runs the command line."""

from cadenza.cli import main

main()
