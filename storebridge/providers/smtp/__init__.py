"""SMTP: the mailer, its settings and plugin."""
