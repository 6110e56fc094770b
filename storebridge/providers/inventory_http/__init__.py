"""The external inventory system over HTTP: its client, webhook source, settings and plugin."""
