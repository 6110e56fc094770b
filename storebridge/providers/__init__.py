"""Providers are plugins: the interface (`storebridge.providers.plugin`), the registry of installed ones
(`storebridge.providers.registry`) and the built-in providers, one folder each (stripe, paypal, shippo,
sendgrid, smtp, inventory_http). See storebridge.providers.plugin for a minimal provider."""

# The plugin interface, importable from the package itself; its one list of names is plugin.py's.
from storebridge.providers.plugin import *  # noqa: F403
from storebridge.providers.plugin import __all__ as __all__
