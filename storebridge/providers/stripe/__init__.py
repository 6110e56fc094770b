"""Stripe: the SDK adapter, its currency rules, dispute and mention parsing, settings and plugin."""
