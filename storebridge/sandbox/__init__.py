"""Provider emulators ("sandboxes") that the official SDKs can talk to over HTTP, for tests and demos.

Import the submodules directly, e.g. `from storebridge.sandbox.stripe import StripeSandbox`.
"""

__all__: list[str] = []
