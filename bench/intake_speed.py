"""Benchmark: the intake end to end against Dovecot + aiosmtpd (issues 4 and 11).

(a) a backlog of 500 unit emails, each with a 50-row attachment: filed, replied, moved —
    goal ≥ 10 messages/s; (b) latency from APPEND to the reply at the SMTP server with
    ``intake run`` and IMAP IDLE — goal median ≤ 2 s; (c) a cycle with no new mail in a
    folder holding 10,000 old messages — goal ≤ 0.2 s.

``--national`` (issue 11) measures a national campaign instead: 700 units, each with its
communes and hamlets (bench/national.py), each sending a 150-row list, the whole
backlog (105,000 rows) taken by one cycle — filed, replied, moved — goal ≥ 10
messages/s end to end, the workbook rebuild at the end of that cycle included; then a
quiet cycle that files nothing — goal ≤ 0.2 s and no rebuild; then a rebuild of the
105,000 rows in a process of its own — goal ≤ 10 s and ≤ 300 MB peak RSS.
``--profile`` adds where the backlog cycle spent its time (cProfile; the reader's
worker process shows as the time spent waiting for it).

    .venv/bin/python bench/intake_speed.py [--backlog 500] [--old 10000] [--latency 10]
    .venv/bin/python bench/intake_speed.py --national [--units 700] [--rows 150] [--profile]
Needs Dovecot (dovecot-imapd) and root (Dovecot runs its mail as the `mail` user).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
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
from intake.mail import imap  # noqa: E402
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


def national(dovecot, smtp: SavingHandler, smtp_port: int, folder: Path, units: int,
             rows: int, profile: bool) -> None:
    """A national campaign's backlog, then a quiet cycle, then a rebuild (see above)."""
    from national import write_reference

    reference_dir = write_reference(folder / "reference", units)
    user = dovecot.add_user()
    settings = mail_settings(folder, dovecot, user, smtp_port, smtp={"max_replies_per_hour": 0},
                             paths={"reference_dir": str(reference_dir)})
    reference = load_reference(settings.paths.reference_dir)
    start = time.perf_counter()
    files = [(unit, form(settings, reference, unit,
                         eligible_rows(settings, reference, unit, limit=rows)))
             for unit in reference.units.values()]
    made = time.perf_counter() - start
    client = dovecot.client(user)
    start = time.perf_counter()
    for unit, data in files:
        append(client, "INBOX", unit_mail(unit.emails[0], user, f"Danh sách {unit.name}",
                                          attachments=[("ds.xlsx", data)]),
               datetime(2021, 2, 10, 9, 0).astimezone())
    client.logout()
    appended = time.perf_counter() - start
    print(f"national: {units} units, {rows}-row lists; {made:.1f} s to make the forms, "
          f"{appended:.1f} s to APPEND them")

    pipeline = Pipeline(settings)
    replies = len(smtp.messages)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = pipeline.run_cycle(password=dovecot.password)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    replies = len(smtp.messages) - replies
    filed = pipeline.store.one("SELECT COUNT(*) FROM rows WHERE current=1")[0]
    with imap.connect(settings.mailbox, dovecot.password) as box:
        imap.select(box, "INBOX")
        left = len(imap.all_uids(box))
    print(f"(n1) backlog: {units} messages filed, replied and moved in {seconds:.1f} s = "
          f"{units / seconds:.1f} messages/s end to end (goal ≥ 10), workbook rebuild "
          f"included; statuses {result.statuses}, sent {result.sent.get('sent')}, replies "
          f"received {replies}, moved {result.moved}, left in INBOX {left}, "
          f"{filed:,} rows filed, errors {result.errors[:3]}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(out.getvalue())

    workbook = settings.paths.workbook
    written = workbook.stat().st_mtime_ns
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        quiet = pipeline.run_cycle(password=dovecot.password)
        timings.append(time.perf_counter() - start)
        assert quiet.fetched == 0 and not quiet.statuses, quiet
    pipeline.store.close()
    kept = workbook.stat().st_mtime_ns == written
    print(f"(n2) quiet cycle (nothing new, {units} units, {filed:,} rows in the store): median "
          f"{statistics.median(timings):.3f} s over 5 (goal ≤ 0.2 s), workbook "
          f"{'kept' if kept else 'REBUILT'}")

    done = subprocess.run([sys.executable, str(ROOT / "bench" / "workbook_speed.py"),
                           "--rebuild", str(settings.paths.data_dir), "--reference",
                           str(reference_dir)], check=True, capture_output=True, text=True,
                          cwd=ROOT)
    rebuilt = json.loads(done.stdout)
    print(f"(n3) rebuild of {rebuilt['rows']:,} rows in a process of its own: "
          f"{rebuilt['seconds']:.2f} s ({rebuilt['cpu']:.2f} s of CPU), "
          f"{rebuilt['peak_mb']:.0f} MB peak RSS (goal ≤ 10 s, ≤ 300 MB); load average "
          f"{Path('/proc/loadavg').read_text().split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--old", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=10)
    parser.add_argument("--national", action="store_true",
                        help="the national campaign instead of (a)-(c)")
    parser.add_argument("--units", type=int, default=700)
    parser.add_argument("--rows", type=int, default=150)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    handler = SavingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with running_dovecot(binary) as dovecot, tempfile.TemporaryDirectory() as folder:
            base = Path(folder)
            if args.national:
                national(dovecot, handler, controller.port, base / "n", args.units, args.rows,
                         args.profile)
                return
            backlog(dovecot, controller.port, base / "a", args.backlog)
            latency(dovecot, handler, controller.port, base / "b", args.latency)
            quiet_cycle(dovecot, controller.port, base / "c", args.old)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
