"""TLS for both mail protocols: certificate checks always on, a private CA when asked."""

from __future__ import annotations

import ssl


def ssl_context(ca_file: object | None) -> ssl.SSLContext:
    """Certificate checks always on; a private CA (tests, self-hosted) via ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
