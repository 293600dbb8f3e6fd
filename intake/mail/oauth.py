"""XOAUTH2 for Gmail: an access token from a refresh token, or given directly.

Google's OAuth 2.0 "installed app" flow yields a long-lived refresh token once (see the
README); from it a one-hour access token is fetched at each login from the configured
token endpoint. Secrets (client secret, refresh token, access token) come only from the
environment and are never logged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ..config import Settings
from ..errors import MailboxError


def login_secret(settings: Settings, auth: str, password_env: str, timeout: float) -> str | None:
    """The IMAP/SMTP login secret: the app password, or with ``auth = "xoauth2"`` an access
    token (refreshed from the refresh token when one is configured, else read from
    ``password_env`` as a ready token). Secrets come from the environment only."""
    if auth != "xoauth2":
        return settings.secret(password_env)
    refresh = settings.secret(settings.oauth.refresh_token_env)
    if not refresh:
        return settings.secret(password_env)
    return refresh_access_token(settings.oauth.token_url, settings.oauth.client_id,
                                settings.secret(settings.oauth.client_secret_env) or "",
                                refresh, timeout)


def imap_secret(settings: Settings) -> str | None:
    mailbox = settings.mailbox
    return login_secret(settings, mailbox.auth, mailbox.password_env, mailbox.timeout_seconds)


def smtp_auth(settings: Settings) -> str:
    """[smtp] auth, where "same" follows [mailbox] auth (one Gmail account for both)."""
    return settings.mailbox.auth if settings.smtp.auth == "same" else settings.smtp.auth


def refresh_access_token(token_url: str, client_id: str, client_secret: str,
                         refresh_token: str, timeout: float) -> str:
    """POST grant_type=refresh_token; the answer's access_token, or a MailboxError."""
    body = urllib.parse.urlencode({
        "grant_type": "refresh_token", "client_id": client_id,
        "client_secret": client_secret, "refresh_token": refresh_token}).encode()
    request = urllib.request.Request(token_url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read(1_000_000).decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", errors="replace")
        raise MailboxError(f"OAuth token refresh refused ({exc.code}): {detail[:200]}") from None
    except (OSError, ValueError) as exc:
        raise MailboxError(f"OAuth token endpoint {token_url} unreachable: {exc}") from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        raise MailboxError("OAuth token endpoint answered without an access_token")
    return str(token)


def xoauth2_string(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (RFC-less, as Google documents it)."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"
