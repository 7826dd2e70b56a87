"""Webhook secrets and how an endpoint's settings are named: checked here once, when settings load, so
`newswatch config`, `run` and `alerts` agree about the same configuration (the alert worker signs with
the same `decode_secret`, alerts/signing.py)."""

from __future__ import annotations

import base64
import binascii

from newswatch.errors import ConfigError

SECRET_PREFIX = "whsec_"
# Platforms that sign with their own single secret (not a whsec_ key): alerts/formats.py
SINGLE_SECRET_FORMATS = ("feishu", "dingtalk")


def setting_name(endpoint, field: str) -> str:
    """How a user finds an endpoint's setting: the environment variable for `default`, else the table."""
    if endpoint.name == "default":
        return f"NEWSWATCH_WEBHOOK_{field.upper()}"
    return f"webhooks.{endpoint.name}.{field}"


def decode_secret(secret: str, setting: str = "NEWSWATCH_WEBHOOK_SECRET") -> bytes:
    """The key bytes of a `whsec_` secret; a malformed one is a ConfigError (which never shows the secret)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError(setting, "expected secrets of the form whsec_<base64 key>")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(setting, "a whsec_ secret is not valid base64 after the prefix") from None
    if len(key) < 16:
        raise ConfigError(setting, f"a whsec_ secret's key is {len(key)} bytes; expected at least 16")
    return key


def check_secrets(endpoint) -> None:
    """The endpoint's secrets as its format will use them (ConfigError naming the setting if not)."""
    if endpoint.format in SINGLE_SECRET_FORMATS:
        if len(endpoint.secrets) > 1:
            raise ConfigError(setting_name(endpoint, "secret"),
                              f"the {endpoint.format} platform signs with one secret; got {len(endpoint.secrets)}")
    elif endpoint.format == "standard":
        for secret in endpoint.secrets:
            decode_secret(secret, setting_name(endpoint, "secret"))
