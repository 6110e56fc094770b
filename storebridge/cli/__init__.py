"""The `storebridge` command line: `app` is the Typer application, one module per command group
(`webhooks`, `payments`, `shipping`, `inventory`, `sandbox`, `config`), the longer tasks (`tasks`,
`demo`) apart from argument parsing, and `hub_client` / `terminal` shared by the commands."""

from storebridge.cli.app import command, main

__all__ = ["command", "main"]
