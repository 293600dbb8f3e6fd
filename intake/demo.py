"""``intake demo``: the whole job on an embedded mail server, on loopback only.

pymap (in-memory IMAP, a subprocess) and aiosmtpd (SMTP, a thread) listen on ports the
OS picks; sample mail from the district units covering every status is appended; one
intake cycle runs; the status table, the workbook and every reply are shown.
"""

from __future__ import annotations

import imaplib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from .config import Settings, settings_for
from .errors import IntakeError
from .pipeline import CycleResult, Pipeline
from .reference import load_reference
from .samples import append, eligible_rows, form, unit_mail

DEMO_USER = "bantckt.tdbentre@example.org"
DEMO_PASSWORD = "demo-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SavingHandler:
    """aiosmtpd handler that keeps every message (as .eml files and in memory)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        self.messages.append(bytes(data))
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{len(self.messages):03d}.eml").write_bytes(data)
        return "250 OK"


class DemoError(IntakeError):
    """The embedded demo servers could not be started."""

    hint = "is another program using the loopback ports? run `make demo` again"


@dataclass
class PymapServer:
    process: subprocess.Popen
    port: int

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_pymap(user: str, password: str, timeout: float = 15) -> PymapServer:
    """Start pymap's in-memory backend and wait until it answers; say why if it does not."""
    port = free_port()
    code = "import sys; from pymap.main import main; sys.argv[0]='pymap'; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--no-service", "admin", "--host", "127.0.0.1",
         "--port", str(port), "dict", "--demo-user", user, "--demo-password", password],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            why = process.stderr.read().decode(errors="replace").strip().splitlines()
            raise DemoError("the demo IMAP server (pymap) stopped at start: "
                            + (why[-1][-300:] if why else f"exit status {process.returncode}"))
        try:  # ready when *pymap* greets us (not whatever else may hold the port)
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                if probe.recv(64).startswith(b"* OK") and process.poll() is None:
                    return PymapServer(process, port)
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise DemoError(f"the demo IMAP server (pymap) did not listen within {timeout:.0f} s")


def demo_settings(base: Settings, folder: Path, imap_port: int, smtp_port: int) -> Settings:
    return settings_for(
        folder,
        board=base.board.model_dump(),
        campaign=base.campaign.model_dump(),
        rules={**base.rules.model_dump(), "authserv_id": "mx.google.com"},
        limits=base.limits.model_dump(),
        mailbox={"host": "127.0.0.1", "port": imap_port, "security": "none",
                 "username": DEMO_USER, "password_env": "INTAKE_DEMO_IMAP_PASSWORD",
                 "timeout_seconds": 20, "start_from": "all"},
        smtp={"host": "127.0.0.1", "port": smtp_port, "security": "none", "username": "",
              "from_address": DEMO_USER, "max_replies_per_hour": 20},
        paths={"reference_dir": str(base.paths.reference_dir), "data_dir": str(folder),
               "workbook": str(folder / "TongHop_ChiDoanKieuMau.xlsx"),
               "templates_dir": str(base.paths.templates_dir)},
    )


def sample_mail(settings: Settings) -> list[tuple[object, datetime]]:
    """One message per situation the board meets, from all 9 units."""
    reference = load_reference(settings.paths.reference_dir)
    units = reference.units
    deadline = settings.campaign.deadline
    on_time = deadline - timedelta(days=5)
    to = settings.mailbox.username
    mails: list[tuple[object, datetime]] = []

    def sheet(code: str, rows: list[list[object]]) -> bytes:
        return form(settings, reference, units[code], rows)

    def send(code: str, subject: str, rows, when: datetime, **kw) -> None:
        files = [(f"DS_CDKM_{code}.xlsx", sheet(code, rows))] if rows is not None else []
        mails.append((unit_mail(units[code].emails[0], to, subject, attachments=files,
                                date=when, **kw), when))

    for code in ("CT", "MCB", "TPBT"):
        send(code, f"Danh sách đăng ký Chi đoàn kiểu mẫu – {units[code].name}",
             eligible_rows(settings, reference, units[code]), on_time)
    broken = eligible_rows(settings, reference, units["CL"])
    broken[0][3] = None  # members missing
    broken[1][1] = broken[1][1].replace("Xã ", "Xa ") + "h"  # a commune misspelt
    send("CL", "Danh sach dang ky CDKM Cho Lach", broken, on_time)
    send("MCN", "Danh sách CĐKM (gửi trễ)", eligible_rows(settings, reference, units["MCN"]),
         deadline + timedelta(days=2))
    send("GT", "Danh sách đăng ký Chi đoàn kiểu mẫu", None, on_time,
         body="Ban xem danh sách tại https://docs.google.com/spreadsheets/d/xyz")
    send("BD", "Danh sách Chi đoàn kiểu mẫu", eligible_rows(settings, reference, units["BD"]),
         on_time, auth="fail")
    send("BT", "Trả lời tự động: Đang nghỉ phép", None, on_time,
         headers={"Auto-Submitted": "auto-replied"})
    rows = eligible_rows(settings, reference, units["TP"])
    half = len(rows) // 2
    send("TP", "Danh sách đăng ký Chi đoàn kiểu mẫu", rows[:half], on_time)
    send("TP", "Bổ sung danh sách Chi đoàn kiểu mẫu", rows[half:], on_time + timedelta(hours=3))
    mails.append((unit_mail("nguoila@example.net", to, "Danh sách Chi đoàn",
                            attachments=[("ds.xlsx", sheet("CT", rows[:2]))], date=on_time),
                  on_time))
    return mails


def run_demo(base: Settings, folder: Path, echo=print,
             progress: Callable[[int, str], None] | None = None,
             ) -> tuple[CycleResult, Settings, Path]:
    """Run everything; ``folder`` is wiped first, so running the demo twice works."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    replies = folder / "replies"
    server = start_pymap(DEMO_USER, DEMO_PASSWORD)
    handler = SavingHandler(replies)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = demo_settings(base, folder, server.port, controller.port)
        client = imaplib.IMAP4("127.0.0.1", server.port, timeout=20)
        client.login(DEMO_USER, DEMO_PASSWORD)
        mails = sample_mail(settings)
        for message, when in mails:
            append(client, "INBOX", message, when)  # type: ignore[arg-type]
        client.logout()
        echo(f"Đã đưa {len(mails)} thư mẫu vào hộp thư IMAP 127.0.0.1:{server.port}")
        pipeline = Pipeline(settings)
        if progress is not None:
            progress(len(mails), "")
            pipeline.on_message = lambda status: progress(len(mails), status)
        result = pipeline.run_cycle(password=DEMO_PASSWORD)
        pipeline.store.close()
    finally:
        controller.stop()
        server.stop()
    return result, settings, replies
