"""XOAUTH2 login against a real Dovecot whose oauth2 passdb asks a local token service."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from intake.errors import MailboxError
from intake.pipeline import Pipeline
from intake.samples import eligible_rows, form, unit_mail

from .conftest import mail_settings, need, running_dovecot

pytestmark = pytest.mark.dovecot

ACCESS = "ya29.test-access-token"
REFRESH = "1//test-refresh-token"
SECRET = "client-secret"


class TokenService(BaseHTTPRequestHandler):
    """Both ends of Google's OAuth as far as we need: /token and /introspect (Dovecot)."""

    user = ""
    refreshed = 0

    def do_POST(self):
        form_data = urllib.parse.parse_qs(self.rfile.read(
            int(self.headers.get("Content-Length", 0))).decode())
        if self.path == "/token":
            ok = (form_data.get("refresh_token") == [REFRESH]
                  and form_data.get("client_secret") == [SECRET])
            TokenService.refreshed += ok
            body = {"access_token": ACCESS, "expires_in": 3599} if ok else {
                "error": "invalid_grant"}
            self._answer(200 if ok else 400, body)
        else:
            active = form_data.get("token") == [ACCESS]
            self._answer(200, {"active": active, "email": TokenService.user})

    def _answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


OAUTH_CONFIG = """
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}
"""


@pytest.fixture
def oauth_dovecot():
    need("openssl")
    binary = need("dovecot")
    http = ThreadingHTTPServer(("127.0.0.1", 0), TokenService)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    port = http.server_address[1]
    settings_file = (f"introspection_mode = post\n"
                     f"introspection_url = http://127.0.0.1:{port}/introspect\n"
                     "username_attribute = email\nactive_attribute = active\n"
                     "active_value = true\n")
    try:
        with running_dovecot(binary, OAUTH_CONFIG, {"oauth2.conf.ext": settings_file}) as server:
            yield server, port
    finally:
        http.shutdown()


def test_xoauth2_login_with_a_refreshed_token(tmp_path, oauth_dovecot, smtp_sink, reference,
                                             monkeypatch):
    server, port = oauth_dovecot
    user = server.add_user()
    TokenService.user = user
    settings = mail_settings(tmp_path, server, user, smtp_sink.port,
                             mailbox={"auth": "xoauth2", "password_env": "TEST_ACCESS_TOKEN"},
                             oauth={"token_url": f"http://127.0.0.1:{port}/token",
                                    "client_id": "intake.apps.example",
                                    "client_secret_env": "TEST_CLIENT_SECRET",
                                    "refresh_token_env": "TEST_REFRESH_TOKEN"})
    monkeypatch.setenv("TEST_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("TEST_REFRESH_TOKEN", REFRESH)
    monkeypatch.delenv("TEST_ACCESS_TOKEN", raising=False)
    unit = reference.units["CT"]
    server.deliver(user, unit_mail(unit.emails[0], user, "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))]))

    pipeline = Pipeline(settings)
    try:
        result = pipeline.run_cycle()
    finally:
        pipeline.store.close()
    assert result.statuses == {"accepted": 1}
    assert TokenService.refreshed >= 1

    monkeypatch.setenv("TEST_REFRESH_TOKEN", "revoked")
    pipeline = Pipeline(settings)
    try:
        with pytest.raises(MailboxError, match="OAuth token refresh refused"):
            pipeline.run_cycle()
    finally:
        pipeline.store.close()
