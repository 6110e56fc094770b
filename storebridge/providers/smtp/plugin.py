"""Plain SMTP as a mail provider plugin (NOTIFICATIONS_PROVIDER=smtp): no webhook, no sandbox."""

from __future__ import annotations

from storebridge.providers.plugin import BuiltProvider, ProviderContext, ProviderPlugin
from storebridge.providers.smtp.adapter import SmtpMailer
from storebridge.providers.smtp.settings import SmtpSettings

__all__ = ["SmtpPlugin", "plugin"]


class SmtpPlugin(ProviderPlugin[SmtpSettings]):
    name = "smtp"
    kind = "mail"
    settings_model = SmtpSettings
    credential_variables = ("SMTP_HOST",)
    switch_off = "NOTIFICATIONS_PROVIDER=sendgrid"
    description = "e-mail over SMTP"
    priority = 20

    def uses_sandbox(self, settings: SmtpSettings) -> bool:
        return False

    def build(self, settings: SmtpSettings, context: ProviderContext) -> BuiltProvider:
        mailer = SmtpMailer(
            host=settings.host,
            port=settings.port,
            username=settings.user,
            password=settings.password.get_secret_value() if settings.password else None,
            starttls=settings.starttls,
            use_tls=settings.tls,
            timeout=settings.timeout_seconds,
        )
        return BuiltProvider(
            mode="live",
            mail=mailer,
            problems=mailer.validate_config(),
            closers=(mailer.aclose,),
            health_check=mailer.health_check,
        )


plugin = SmtpPlugin()
