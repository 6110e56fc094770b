"""Provider emulators ("sandboxes") that the official SDKs can talk to over HTTP, for tests and demos.

Every emulator is its state machine plus its routes on one kit (`kit/`): a route table, one fault model,
one signed-delivery sender with retries, one control API (`/_control/faults`, `/_control/deliveries`,
`/_control/webhooks`). Import the submodules directly, e.g. `from storebridge.sandbox.stripe import StripeSandbox`.
"""

__all__: list[str] = []
