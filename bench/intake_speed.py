"""Benchmark: the intake end to end against Dovecot + aiosmtpd (issue 4).

(a) a backlog of 500 unit emails, each with a 50-row attachment: filed, replied, moved —
    goal ≥ 10 messages/s; (b) latency from APPEND to the reply at the SMTP server with
    ``intake run`` and IMAP IDLE — goal median ≤ 2 s; (c) a cycle with no new mail in a
    folder holding 10,000 old messages — goal ≤ 0.2 s.

    .venv/bin/python bench/intake_speed.py [--backlog 500] [--old 10000] [--latency 10]
Needs Dovecot (dovecot-imapd) and root (Dovecot runs its mail as the `mail` user).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

from intake.demo import SavingHandler, free_port  # noqa: E402
from intake.pipeline import Pipeline  # noqa: E402
from intake.reference import load_reference  # noqa: E402
from intake.samples import append, eligible_rows, form, unit_mail  # noqa: E402
from tests.conftest import (  # noqa: E402
    mail_settings,
    make_settings,
    running_dovecot,
    write_run_config,
)


def backlog(dovecot, smtp_port: int, folder: Path, count: int) -> None:
    user = dovecot.add_user()
    settings = mail_settings(folder, dovecot, user, smtp_port,
                             smtp={"max_replies_per_hour": 0})
    reference = load_reference(settings.paths.reference_dir)
    units = list(reference.units.values())
    files = {u.code: form(settings, reference, u, eligible_rows(settings, reference, u, limit=50))
             for u in units}
    client = dovecot.client(user)
    start = time.perf_counter()
    for index in range(count):
        unit = units[index % len(units)]
        append(client, "INBOX", unit_mail(unit.emails[0], user, f"Danh sách {index}",
                                          attachments=[("ds.xlsx", files[unit.code])]),
               datetime(2021, 2, 10, 9, 0).astimezone())
    client.logout()
    appended = time.perf_counter() - start
    pipeline = Pipeline(settings)
    start = time.perf_counter()
    result = pipeline.run_cycle(password=dovecot.password)
    seconds = time.perf_counter() - start
    pipeline.store.close()
    print(f"(a) backlog: {count} messages (50 rows each) filed, replied and moved in "
          f"{seconds:.1f} s = {count / seconds:.1f} messages/s (goal ≥ 10); "
          f"statuses {result.statuses}, sent {result.sent.get('sent')}, moved {result.moved}; "
          f"APPEND took {appended:.1f} s")


def quiet_cycle(dovecot, smtp_port: int, folder: Path, old: int) -> None:
    user = dovecot.add_user()
    settings = mail_settings(folder, dovecot, user, smtp_port)
    client = dovecot.client(user)
    raw = unit_mail("someone@example.net", user, "cũ").as_bytes()
    for _ in range(old):
        client.append("INBOX", "", None, raw)
    client.logout()
    pipeline = Pipeline(settings)
    store = pipeline.store
    from intake.mail import imap

    with imap.connect(settings.mailbox, dovecot.password) as box:  # mark all as seen before
        validity = imap.select(box, "INBOX")
        last = max(imap.uids_after(box, 0))
    with store.transaction():
        store.db.execute("INSERT INTO folders(name, uidvalidity, last_uid) VALUES (?,?,?)",
                         ("INBOX", validity, last))
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        result = pipeline.run_cycle(password=dovecot.password)
        timings.append(time.perf_counter() - start)
        assert result.fetched == 0
    store.close()
    print(f"(c) no new mail in a folder of {old:,} old messages: median cycle "
          f"{statistics.median(timings):.3f} s over 5 (goal ≤ 0.2 s; includes login, "
          "SEARCH; a quiet cycle keeps the workbook)")


def latency(dovecot, smtp: SavingHandler, smtp_port: int, folder: Path, count: int) -> None:
    user = dovecot.add_user()
    config = write_run_config(folder / "intake.toml", dovecot, user, smtp_port,
                              password_env="BENCH_IMAP_PASSWORD", poll_minutes=30, idle=True)
    daemon = subprocess.Popen([sys.executable, "-m", "intake", "--config", str(config), "run"],
                              env={**os.environ, "BENCH_IMAP_PASSWORD": dovecot.password},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    settings = make_settings(folder)
    reference = load_reference(settings.paths.reference_dir)
    unit = reference.units["CT"]
    data = form(settings, reference, unit, eligible_rows(settings, reference, unit))
    waits = []
    try:
        time.sleep(3)
        for index in range(count):
            before = len(smtp.messages)
            client = dovecot.client(user)
            start = time.perf_counter()
            append(client, "INBOX", unit_mail(unit.emails[0], user, f"DS {index}",
                                              attachments=[("ds.xlsx", data)]),
                   datetime.now().astimezone())
            client.logout()
            while len(smtp.messages) == before and time.perf_counter() - start < 60:
                time.sleep(0.02)
            waits.append(time.perf_counter() - start)
            time.sleep(0.5)
    finally:
        daemon.terminate()
        daemon.wait(15)
    print(f"(b) APPEND → reply at the SMTP server with IDLE (poll interval 30 min): median "
          f"{statistics.median(waits):.2f} s, max {max(waits):.2f} s over {count} (goal "
          "median ≤ 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--old", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=10)
    args = parser.parse_args()
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    handler = SavingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with running_dovecot(binary) as dovecot, tempfile.TemporaryDirectory() as folder:
            base = Path(folder)
            backlog(dovecot, controller.port, base / "a", args.backlog)
            latency(dovecot, handler, controller.port, base / "b", args.latency)
            quiet_cycle(dovecot, controller.port, base / "c", args.old)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
