"""SendGrid: the Mail Send adapter, Event Webhook verification, settings and plugin."""
