"""`python -m storebridge` runs the CLI."""

from storebridge.cli import main

main()
