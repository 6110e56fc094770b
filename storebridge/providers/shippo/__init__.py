"""Shippo: the REST adapter, its webhook source, settings and plugin."""
