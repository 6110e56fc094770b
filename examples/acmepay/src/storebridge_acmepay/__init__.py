"""AcmePay for storebridge: an example third-party payment provider, plugged in by entry point.

Installing this package is all it takes: storebridge finds `storebridge_acmepay.plugin:plugin` in
the `storebridge.providers` entry-point group. Nothing here runs at import time.
"""

from storebridge_acmepay.adapter import AcmePayProvider
from storebridge_acmepay.sandbox import AcmePaySandbox
from storebridge_acmepay.settings import AcmePaySettings
from storebridge_acmepay.signature import SIGNATURE_HEADER, sign, signature_header, verify

__all__ = [
    "AcmePayProvider",
    "AcmePaySettings",
    "AcmePaySandbox",
    "SIGNATURE_HEADER",
    "sign",
    "signature_header",
    "verify",
]
