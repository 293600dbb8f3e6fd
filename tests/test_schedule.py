"""``intake run``: campaign jobs on a controlled clock, and the daemon as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from intake import campaign
from intake.config import TZ
from intake.mail import smtp
from intake.pipeline import Pipeline
from intake.samples import eligible_rows, form, unit_mail
from intake.schedule import build_scheduler
from intake.store import open_store

from .conftest import file_offline, make_settings, wait_until, write_run_config

STAFF = ["canbo1@example.org", "canbo2@example.org"]


def campaign_settings(tmp_path: Path, port: int):
    return make_settings(
        tmp_path, rules={"require_sender_auth": False, "staff": STAFF},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", "username": "",
              "from_address": "ban@example.org", "max_replies_per_hour": 100})


def drive(settings, start: datetime, end: datetime, step: timedelta) -> None:
    """Call every campaign job at each tick of a simulated clock, after an intake cycle,
    delivering as it goes."""
    pipeline = Pipeline(settings)
    store, reference, env = pipeline.store, pipeline.reference, pipeline.templates
    now = start
    while now <= end:
        with time_machine.travel(now, tick=False):  # Date headers, outbox times follow
            store.event("cycle")  # the intake cycle of ``intake run`` at this tick
            campaign.send_reminders(store, reference, settings, env, now)
            campaign.send_digest(store, reference, settings, env, now)
            campaign.send_final_report(store, reference, settings, env, now)
            smtp.deliver(store, settings)
        now += step
    store.close()


def test_reminders_digest_and_final_report_on_a_controlled_clock(tmp_path, smtp_sink,
                                                                  reference):
    settings = campaign_settings(tmp_path, smtp_sink.port)
    unit = reference.units["CT"]
    accepted = unit_mail(unit.emails[0], "ban@example.org", "DS", attachments=[
        ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference, unit)))])
    file_offline(settings, [(accepted, datetime(2021, 2, 5, 9, 0, tzinfo=TZ))])
    smtp_sink.handler.messages.clear()  # the acknowledgement is not what we count here

    drive(settings, datetime(2021, 2, 10, 0, 0, tzinfo=TZ), datetime(2021, 2, 22, 23, 0, tzinfo=TZ),
          timedelta(minutes=30))

    by_kind: dict[str, list] = {}
    for message in smtp_sink.messages:
        by_kind.setdefault(message["X-Intake-Kind"], []).append(message)
    reminders = by_kind["reminder"]
    days = sorted({datetime.strptime(m["Date"][5:16], "%d %b %Y").day for m in reminders})
    assert days == [13, 17, 19]  # 7, 3 and 1 days before 20/02
    assert len(reminders) == 3 * 8  # every unit but Châu Thành (accepted), once per day
    assert unit.emails[0] not in {m["To"] for m in reminders}
    [blank] = list(reminders[0].iter_attachments())
    assert blank.get_filename().startswith("Mau_DS_CDKM_")
    assert all(m["Auto-Submitted"] == "auto-generated" for m in reminders)
    digests = by_kind["digest"]
    assert len(digests) == 13 * len(STAFF)  # one a day, 10/02 … 22/02
    assert {m["To"] for m in digests} == set(STAFF)
    assert digests[0]["Subject"] == ("Tổng hợp tiếp nhận danh sách Chi đoàn kiểu mẫu ngày "
                                     "10/02/2021")  # local date as people write it
    text = digests[0].get_body(("plain",)).get_content()
    assert "Huyện đoàn Châu Thành: Đã tiếp nhận" in text
    [attachment] = list(digests[0].iter_attachments())
    assert attachment.get_filename() == "TongHop.xlsx"
    finals = by_kind["final-report"]
    assert len(finals) == len(STAFF)
    assert all(datetime.strptime(m["Date"][5:16], "%d %b %Y").day == 20 for m in finals)


def test_final_report_waits_for_a_cycle_past_the_deadline_and_follows_late_lists(
        tmp_path, smtp_sink, reference):
    """The report is not sent from the state before the deadline (a restart, the inbox not
    yet read), and a late list that changes the figures brings an update, once."""
    settings = campaign_settings(tmp_path, smtp_sink.port)
    deadline = settings.campaign.deadline
    ct, tpbt = reference.units["CT"], reference.units["TPBT"]
    file_offline(settings, [(unit_mail(ct.emails[0], "ban@example.org", "DS", attachments=[
        ("ds.xlsx", form(settings, reference, ct, eligible_rows(settings, reference, ct)))]),
        deadline - timedelta(days=3))])
    pipeline = Pipeline(settings)
    store, env = pipeline.store, pipeline.templates

    def report(at: datetime, cycle: bool) -> int:
        with time_machine.travel(at, tick=False):
            if cycle:
                store.event("cycle")
            count = campaign.send_final_report(store, reference, settings, env, at)
            smtp.deliver(store, settings)
        return count

    with time_machine.travel(deadline - timedelta(hours=1), tick=False):
        store.event("cycle")  # the last cycle before the deadline (then a restart)
    assert report(deadline + timedelta(minutes=1), cycle=False) == 0
    assert report(deadline + timedelta(minutes=5), cycle=True) == len(STAFF)
    assert report(deadline + timedelta(hours=1), cycle=True) == 0  # nothing changed
    first = smtp_sink.messages[-1]
    text = first.get_body(("plain",)).get_content()
    assert first["Subject"] == "Báo cáo kết quả đăng ký Chi đoàn kiểu mẫu năm 2021"
    assert "Thành đoàn Bến Tre: Chưa gửi" in text and "cập nhật (lần" not in text
    store.close()

    late = deadline + timedelta(days=1)
    file_offline(settings, [(unit_mail(tpbt.emails[0], "ban@example.org", "DS trễ", attachments=[
        ("ds.xlsx", form(settings, reference, tpbt, eligible_rows(settings, reference, tpbt)))]),
        late)], first_uid=2)
    store = open_store(settings.paths.data_dir)
    assert report(late + timedelta(minutes=5), cycle=True) == len(STAFF)
    assert report(late + timedelta(hours=2), cycle=True) == 0
    store.close()
    update = smtp_sink.messages[-1]
    text = update.get_body(("plain",)).get_content()
    assert update["Subject"] == ("Báo cáo cập nhật (lần 1) kết quả đăng ký Chi đoàn kiểu mẫu "
                                 "năm 2021")
    assert "báo cáo cập nhật (lần 1)" in text
    assert "Thành đoàn Bến Tre: Đã tiếp nhận" in text and "trễ hạn" in text
    finals = [m for m in smtp_sink.messages if m["X-Intake-Kind"] == "final-report"]
    assert len(finals) == 2 * len(STAFF)


def test_watchdog_alerts_once_per_silence(tmp_path, smtp_sink):
    settings = campaign_settings(tmp_path, smtp_sink.port)
    pipeline = Pipeline(settings)
    store, env = pipeline.store, pipeline.templates
    store.event("cycle")
    last = datetime.fromisoformat(store.last_event("cycle"))
    assert campaign.watchdog(store, settings, env, last + timedelta(minutes=119)) == 0
    assert campaign.watchdog(store, settings, env, last + timedelta(minutes=121)) == 2
    assert campaign.watchdog(store, settings, env, last + timedelta(minutes=300)) == 0
    smtp.deliver(store, settings)
    store.close()
    assert [m["X-Intake-Kind"] for m in smtp_sink.messages] == ["alert", "alert"]
    assert "121 phút" in smtp_sink.messages[0].get_body(("plain",)).get_content()


def test_scheduler_jobs_never_overlap_or_burst(settings):
    scheduler = build_scheduler(settings, 5)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "campaign"}
    for job in jobs.values():
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == settings.schedule.misfire_grace_seconds
    assert str(scheduler.timezone) == "Asia/Ho_Chi_Minh"


@pytest.mark.dovecot
@pytest.mark.parametrize("poll_minutes,idle", [(0.05, False), (30, True)],
                         ids=["interval-poll", "imap-idle"])
def test_run_as_a_daemon(tmp_path, dovecot, smtp_sink, reference, poll_minutes, idle):
    """A message appended while it runs is answered (by the interval poll, or by IDLE
    alone when the interval is 30 minutes); a second instance is refused; SIGTERM stops
    it cleanly within 5 s."""
    user = dovecot.add_user()
    config = write_run_config(tmp_path / "intake.toml", dovecot, user, smtp_sink.port,
                              password_env="TEST_IMAP_PASSWORD", poll_minutes=poll_minutes,
                              idle=idle)
    env = {**os.environ, "TEST_IMAP_PASSWORD": dovecot.password}
    command = [sys.executable, "-m", "intake", "--config", str(config), "run"]
    daemon = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        # Ready when the first cycle is done and, with IDLE, its connection is in IDLE (the
        # server's own process title says so): mail appended before that, while the folder
        # is being selected, would only be seen by the 30-minute poll.
        wait_until(lambda: daemon.poll() is not None or (
            (tmp_path / "data" / "TongHop.xlsx").exists()
            and (not idle or dovecot.idling(user))), 30, every=0.1)
        assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        assert not idle or dovecot.idling(user)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert "another intake run is already running" in second.stderr
        unit = reference.units["CT"]
        settings = make_settings(tmp_path)
        dovecot.deliver(user, unit_mail(unit.emails[0], user, "DS", attachments=[
            ("ds.xlsx", form(settings, reference, unit, eligible_rows(settings, reference,
                                                                      unit)))]),
            when=datetime.now().astimezone())
        wait_until(lambda: bool(smtp_sink.messages), 20)
        assert [m["X-Intake-Status"] for m in smtp_sink.messages] == ["accepted"]
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        # The running step finishes first (IDLE may just have started one): seconds, not
        # minutes, even on a loaded CI machine.
        assert time.monotonic() - started < 10
        # Without -v, the journal has a line for the message and for each job, in the
        # board's time zone, and none of the scheduler's own chatter.
        journal = daemon.stderr.read() if daemon.stderr else ""
        assert f"INFO intake configuration {config.resolve()}" in journal
        assert "INFO intake.filing filed uid=1 status=accepted unit=CT" in journal
        assert "INFO intake.schedule cycle done" in journal
        assert "+07:00 INFO" in journal and "apscheduler" not in journal
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_systemd_unit_verifies(tmp_path):
    from .conftest import need

    analyze = need("systemd-analyze")  # fails in CI when missing, like every other tool
    unit = (Path(__file__).parent.parent / "deploy" / "intake.service").read_text()
    intake = Path(sys.executable).parent / "intake"
    unit = (unit.replace("/srv/intake/.venv/bin/intake", str(intake))
            .replace("/srv/intake", str(tmp_path)).replace("User=intake", "User=root")
            .replace("Group=intake", "Group=root")
            .replace("EnvironmentFile=/etc/intake/env", f"EnvironmentFile=-{tmp_path}/env"))
    path = tmp_path / "intake.service"
    path.write_text(unit)
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    problems = [line for line in done.stderr.splitlines() if "intake.service" in line]
    assert problems == [], done.stderr


@pytest.mark.dovecot
def test_login_failure_and_uidvalidity_change_alert_staff_once(tmp_path, dovecot, smtp_sink,
                                                               monkeypatch):
    from intake.schedule import poll_job
    from intake.store import open_store

    from .conftest import mail_settings

    user = dovecot.add_user()
    settings = mail_settings(tmp_path, dovecot, user, smtp_sink.port,
                             rules={"staff": STAFF[:1]})
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong")
    poll_job(settings)
    poll_job(settings)  # the same incident: no second alert
    assert [m["X-Intake-Kind"] for m in smtp_sink.messages] == ["alert"]
    assert "không đăng nhập được" in smtp_sink.messages[0].get_body(("plain",)).get_content()

    monkeypatch.setenv("TEST_IMAP_PASSWORD", dovecot.password)
    poll_job(settings)
    store = open_store(settings.paths.data_dir)
    store.db.execute("UPDATE folders SET uidvalidity=uidvalidity+1")
    store.close()
    poll_job(settings)
    poll_job(settings)
    kinds = [m["X-Intake-Kind"] for m in smtp_sink.messages]
    assert kinds == ["alert", "alert"]
    assert "UIDVALIDITY" in smtp_sink.messages[1].get_body(("plain",)).get_content()
