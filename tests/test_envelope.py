"""One message's envelope: sender, forwarding, authenticity, RFC 3834, late policy."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest

from intake.mail.attachments import extract
from intake.mail.envelope import authentication, envelope, parse
from intake.pipeline import Pipeline
from intake.samples import eligible_rows, form, unit_mail

from .conftest import make_settings

STAFF = "canbo.tckt@example.org"


def test_inline_forward_from_trusted_staff_counts_as_the_unit(tmp_path, reference):
    settings = make_settings(tmp_path, rules={"trusted_forwarders": [STAFF]})
    unit = reference.units["BT"]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit, limit=3))
    body = ("Chuyển tiếp danh sách của Huyện đoàn.\n\n"
            "---------- Forwarded message ---------\n"
            f"From: Huyện đoàn Ba Tri <{unit.emails[0]}>\nDate: 10 Feb 2021\n"
            "Subject: Danh sách\n")
    message = unit_mail(STAFF, "ban@example.org", "Fwd: Danh sách", body=body,
                        attachments=[("bt.xlsx", data)])
    pipeline = Pipeline(settings)
    outcome = pipeline.decide(message.as_bytes(), datetime(2021, 2, 10).astimezone())
    assert outcome.unit is not None and outcome.unit.code == "BT"
    assert outcome.status == "accepted"
    # The same forward from someone not trusted is not believed.
    stranger = unit_mail("ai.do@example.net", "ban@example.org", "Fwd: Danh sách", body=body,
                         attachments=[("bt.xlsx", data)])
    assert pipeline.decide(stranger.as_bytes(), datetime(2021, 2, 10).astimezone()).status \
        == "unknown-sender"
    pipeline.store.close()


def test_attached_rfc822_forward_from_trusted_staff(tmp_path, reference):
    settings = make_settings(tmp_path, rules={"trusted_forwarders": [STAFF]})
    unit = reference.units["GT"]
    inner = unit_mail(unit.emails[0], STAFF, "Danh sách", attachments=[
        ("gt.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])
    outer = unit_mail(STAFF, "ban@example.org", "Fwd: Danh sách")
    outer.add_attachment(inner)
    message = parse(outer.as_bytes())
    env = envelope(message, set(), "mx.google.com", {STAFF})
    assert (env.sender, env.forwarded_by) == (unit.emails[0], STAFF)
    files, _ignored = extract(message, 20)
    assert [f.name for f in files] == ["gt.xlsx"]


def test_only_the_topmost_trusted_authentication_results_counts():
    message = EmailMessage()
    message["Authentication-Results"] = "mx.google.com; dkim=pass header.i=@other.org; spf=fail"
    message["Authentication-Results"] = "mx.google.com; dmarc=pass header.from=example.org"
    assert authentication(message, "mx.google.com", "a@example.org") == "fail"
    spf = EmailMessage()
    spf["Authentication-Results"] = "mx.google.com; spf=pass smtp.mailfrom=a@example.org"
    assert authentication(spf, "mx.google.com", "a@example.org") == "pass"
    assert authentication(spf, "mx.example.net", "a@example.org") == "none"


@pytest.mark.parametrize("header,verdict", [
    ("mx.google.com; dmarc=pass header.from=example.org", "pass"),
    ("mx.google.com; dmarc=pass (p=NONE) header.from=Example.ORG", "pass"),
    # DMARC passed, but for another domain than the From address: it vouches for nothing.
    ("mx.google.com; dmarc=pass header.from=evil.example", "fail"),
    ("mx.google.com; dmarc=pass", "fail"),  # no domain named: alignment cannot be seen
    ("mx.google.com; dmarc=pass header.from=evil.example; dkim=pass header.i=@example.org",
     "pass"),  # DKIM for the sender's own domain still counts
])
def test_dmarc_pass_counts_only_for_the_senders_domain(header, verdict):
    message = EmailMessage()
    message["Authentication-Results"] = header
    assert authentication(message, "mx.google.com", "a@example.org") == verdict


def test_message_whose_from_domain_differs_from_the_dmarc_pass_is_held(tmp_path, reference):
    settings = make_settings(tmp_path)
    unit = reference.units["CT"]
    message = unit_mail(unit.emails[0], "ban@example.org", "DS", auth="", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])
    message["Authentication-Results"] = "mx.google.com; dmarc=pass header.from=attacker.example"
    pipeline = Pipeline(settings)
    try:
        outcome = pipeline.decide(message.as_bytes(), settings.campaign.deadline
                                  - timedelta(days=1))
    finally:
        pipeline.store.close()
    assert outcome.status == "held" and outcome.reply_kind == ""


def test_late_policy_reject(tmp_path, reference):
    settings = make_settings(tmp_path, campaign={"late_policy": "reject"},
                             rules={"require_sender_auth": False})
    unit = reference.units["CT"]
    message = unit_mail(unit.emails[0], "ban@example.org", "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])
    pipeline = Pipeline(settings)
    late = settings.campaign.deadline + timedelta(seconds=1)
    outcome = pipeline.decide(message.as_bytes(), late)
    assert (outcome.status, outcome.late, outcome.reply_kind) == ("rejected-late", True,
                                                                  "rejected-late")
    on_time = pipeline.decide(message.as_bytes(), settings.campaign.deadline - timedelta(seconds=1))
    assert on_time.status == "accepted" and not on_time.late
    pipeline.store.close()


def test_only_unreadable_candidates_get_file_unsupported_naming_each(tmp_path, reference):
    """SPEC §4 step 4: a .pdf or .rar sent instead of the list is FILE_UNSUPPORTED for
    each file (needs-correction), not "no attachment"; an image alone is no-attachment."""
    from intake.store import open_store

    from .conftest import file_offline

    settings = make_settings(tmp_path, rules={"require_sender_auth": False})
    unit = reference.units["CT"]
    files = unit_mail(unit.emails[0], "ban@example.org", "DS")
    files.add_attachment(b"%PDF-1.7 ...", maintype="application", subtype="pdf",
                         filename="Danh sách.pdf")
    files.add_attachment(b"Rar!\x1a\x07\x00", maintype="application", subtype="x-rar",
                         filename="ds.rar")
    photo = unit_mail(unit.emails[1] if len(unit.emails) > 1 else unit.emails[0],
                      "ban@example.org", "Ảnh")
    photo.add_attachment(b"\x89PNG....", maintype="image", subtype="png", filename="anh.png")
    file_offline(settings, [(files, datetime(2021, 2, 10, 9, 0).astimezone()),
                            (photo, datetime(2021, 2, 10, 9, 5).astimezone())])
    with open_store(settings.paths.data_dir) as store:
        statuses = [r["status"] for r in store.query("SELECT status FROM messages ORDER BY uid")]
        found = [(r["code"], r["file"]) for r in store.query(
            "SELECT code, file FROM findings WHERE code LIKE 'FILE_%' ORDER BY id")]
    assert statuses == ["needs-correction", "no-attachment"]
    assert found == [("FILE_UNSUPPORTED", "Danh sách.pdf"), ("FILE_UNSUPPORTED", "ds.rar")]


def test_an_attachment_named_by_an_unquoted_encoded_word_keeps_its_name():
    """`filename==?utf-8?B?…?=` is outside the standard and the parser returns no name;
    the file is still named (and a PDF sent alone still gets FILE_UNSUPPORTED)."""
    from email import message_from_bytes, policy

    from intake.mail.attachments import extract, unreadable_candidates

    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           b"Content-Type: text/plain\r\n\r\nxin gui\r\n--b\r\n"
           b"Content-Type: application/pdf; name==?utf-8?B?RGFuaCBzw6FjaC5wZGY=?=\r\n"
           b"Content-Disposition: attachment; filename==?utf-8?B?RGFuaCBzw6FjaC5wZGY=?=\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n")
    sheets, ignored = extract(message_from_bytes(raw, policy=policy.default), 5)
    assert sheets == []
    assert ignored[0] == "Danh sách.pdf"  # base64 of "Danh sách.pdf", decoded by hand
    assert ignored[1].startswith("tep-dinh-kem")  # nameless, yet never dropped silently
    assert unreadable_candidates(ignored) == ["Danh sách.pdf"]


@pytest.mark.parametrize(("headers", "reason"), [
    ({"X-Apple-Action": "VACATION"}, "auto-reply header"),
    ({"Subject": "Trả lời tự động: Danh sách Chi đoàn"}, "auto-reply subject"),
    ({"Subject": "Automatic reply: Danh sách"}, "auto-reply subject"),
    ({"Subject": "Out of Office: vắng mặt đến 20/02"}, "auto-reply subject"),
    ({"Mailing-List": "contact x-help@lists.example.org; run by ezmlm"}, "mailing list"),
    ({"Sender": "ppp-admin@lists.example.org"}, "mailing list"),
    ({"From": "ppp-request@lists.example.org"}, "mailing list"),
    ({"From": "ne-pas-repondre@example.fr"}, "mailer-daemon"),
])
def test_machine_mail_is_recognised_and_never_answered(headers, reason):
    """Vacation replies, list traffic and no-reply senders marked in the ways real
    responders and list software mark them (found in the mail corpus)."""
    message = EmailMessage()
    message["From"] = headers.pop("From", "huyendoan@example.org")
    message["Subject"] = headers.pop("Subject", "Danh sách Chi đoàn kiểu mẫu")
    for name, value in headers.items():
        message[name] = value
    message.set_content("Nội dung")
    assert envelope(parse(message.as_bytes()), set(), "mx.google.com", set()).auto_reason == reason


@pytest.mark.parametrize("subject", ["Danh sách Chi đoàn kiểu mẫu (bổ sung)",
                                     "Re: Automatic reply: Danh sách", "Tự động hóa danh sách"])
def test_a_units_own_subject_is_not_taken_for_an_auto_reply(subject):
    message = EmailMessage()
    message["From"], message["Subject"] = "huyendoan@example.org", subject
    message.set_content("Kính gửi Ban")
    assert envelope(parse(message.as_bytes()), set(), "mx.google.com", set()).auto_reason == ""


@pytest.mark.parametrize("header", [
    b"Content-Disposition: attachment; filename==?utf-7?Q?+2AA-x.xlsx?=",  # raw fallback
    b'Content-Disposition: attachment; filename="=?utf-7?Q?+2AA-x.xlsx?="',
    b"Content-Disposition: attachment; filename*=utf-7''%2B2AA-x.xlsx",
    b"Content-Disposition: attachment; filename==?raw-unicode-escape?Q?=5Cud800x.xlsx?=",
])
def test_an_attachment_name_decoding_to_a_lone_surrogate_is_made_safe(header):
    """Charsets that can spell a lone surrogate (UTF-7, raw-unicode-escape) must not make
    extract() raise: the message would fail at every attempt, then be held for ever."""
    from email import message_from_bytes, policy

    from intake.mail.attachments import extract

    raw = (b"From: a@example.org\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           b"Content-Type: text/plain\r\n\r\nxin gui\r\n--b\r\n"
           b"Content-Type: application/octet-stream\r\n" + header + b"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--b--\r\n")
    sheets, ignored = extract(message_from_bytes(raw, policy=policy.default), 5)
    names = [s.name for s in sheets] + ignored
    assert len(names) == 1
    names[0].encode("utf-8")  # no surrogate left
