"""PayPal: the Orders v2 client and adapter, webhook verification, auto-capture, settings and plugin."""
