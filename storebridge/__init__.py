"""storebridge: the integration layer between a commerce backend and its providers.

Library use: import a provider adapter and call it without the server, e.g.
`from storebridge.providers.stripe.adapter import StripeProvider`. Nothing is built at import time.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
