"""Command line (SPEC §8). Parses arguments and calls the library; nothing else lives here."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from .config import TZ, Settings, find_config, load_settings
from .errors import IntakeError
from .reference import load_reference

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
ROOT = Path(__file__).resolve().parent.parent


def _console() -> Console:
    """A console wide enough for the status table when output is a pipe or a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the whole job on an embedded mail server with sample district mail.

    Starts pymap (IMAP) and aiosmtpd (SMTP) on free loopback ports, puts sample mail from
    the 9 units in the mailbox, runs one intake cycle and prints the status table, where
    the workbook is and where each reply was saved.

    Example: intake --config config/intake.toml demo
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from .demo import run_demo
    from .store import open_store

    console = _console()
    folder = settings.paths.data_dir / "demo"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("Đang xử lý thư mẫu", total=None)

        def advance(total: int, status: str) -> None:
            bar.update(task, total=total, advance=1 if status else 0,
                       description=f"Đang xử lý thư mẫu {status}".strip())

        result, demo, replies = run_demo(settings, folder, echo=console.print,
                                         progress=advance)
    store = open_store(demo.paths.data_dir)
    try:
        _status_table(console, store, demo)
    finally:
        store.close()
    console.print(f"Thư đã xử lý: {result.fetched}; kết quả: {result.statuses}")
    console.print(f"Phản hồi đã gửi: {result.sent.get('sent', 0)} (lưu tại {replies})")
    from email import message_from_bytes, policy

    for path in sorted(replies.glob("*.eml")):
        reply = message_from_bytes(path.read_bytes(), policy=policy.default)
        console.print(f"  {path}  {reply['X-Intake-Status']} → {reply['To']}")
    console.print(f"Bảng tổng hợp: {result.workbook}")
    return EXIT_OK


def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    """Run one intake cycle now, then exit (exit 1 if the mailbox could not be reached).

    Beside a running `intake run` it waits for the daemon's step to finish, then works
    alone. --backlog also takes mail that was in the folder before the first start
    (left alone by [mailbox] start_from), and answers it.

    Example: INTAKE_IMAP_PASSWORD=... intake poll
    """
    from .pipeline import Pipeline

    def waiting() -> None:
        print("waiting for the running intake step to finish…", file=sys.stderr)

    pipeline = Pipeline(settings)
    try:
        result = pipeline.run_cycle(backlog=args.backlog, on_wait=waiting)
    finally:
        pipeline.store.close()
    print(f"fetched={result.fetched} statuses={result.statuses} sent={result.sent} "
          f"moved={result.moved} workbook={result.workbook}")
    for error in result.errors:
        print(f"warning: {error}", file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the scheduler until stopped (SIGINT/SIGTERM stop it cleanly).

    Example: intake run
    """
    from .schedule import run_forever

    return run_forever(settings, interval_minutes=args.interval)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Check spreadsheets offline, exactly as the pipeline would.

    Exit 0 when no errors, 1 when errors were found, 2 for unusable arguments.

    Example: intake check DS_ChauThanh.xlsx --unit CT --format json
    """
    from .sheets.report import check_files

    reference = load_reference(settings.paths.reference_dir)
    unit = None
    if args.unit:
        unit = reference.units.get(args.unit.upper()) or reference.unit_by_text(args.unit)
        if unit is None:
            print(f"error: unknown unit {args.unit!r} (known: {', '.join(reference.units)})",
                  file=sys.stderr)
            return EXIT_USAGE
    paths = [Path(p) for p in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: file not found: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    report = check_files([(p.name, p.read_bytes()) for p in paths], reference, settings, unit)
    if args.format == "json":
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    if args.annotate:
        from .sheets.annotate import annotate_report

        for path in annotate_report(report, Path(args.annotate)):
            print(f"annotated: {path}", file=sys.stderr)
    return EXIT_FINDINGS if report.errors else EXIT_OK


def _print_report(report) -> None:
    console = _console()
    unit = report.unit.name if report.unit else "(không xác định được đơn vị)"
    console.print(f"Đơn vị: {unit}")
    for file in report.files:
        console.print(f"[bold]{file.file}[/]: {len(file.results)} dòng, "
                      f"{file.valid_rows} dòng hợp lệ")
    findings = report.findings
    if not findings:
        console.print("[green]Không có lỗi.[/]")
        return
    table = RichTable("Tệp", "Trang tính", "Ô", "Mã", "Mức độ", "Nội dung", "Gợi ý",
                      show_lines=False)
    for f in findings:
        table.add_row(f.file, f.sheet, f.cell, f.code, "Lỗi" if f.is_error else "Cảnh báo",
                      f.message, f.suggestion)
    console.print(table)
    console.print(f"{len(report.errors)} lỗi, {len(report.warnings)} cảnh báo.")


def cmd_template(args: argparse.Namespace, settings: Settings) -> int:
    """Write the official blank registration form (with the unit's dropdowns).

    Example: intake template --unit CT -o DS_CDKM_ChauThanh.xlsx
    """
    from .sheets.template import write_template

    reference = load_reference(settings.paths.reference_dir)
    unit = None
    if args.unit:
        unit = reference.units.get(args.unit.upper())
        if unit is None:
            print(f"error: unknown unit {args.unit!r}", file=sys.stderr)
            return EXIT_USAGE
    path = write_template(Path(args.output), settings, reference, unit)
    print(path)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print the per-unit status table, the last cycle and the outbox.

    Example: intake status
    """
    from .store import open_store

    console = _console()
    console.print(f"Cấu hình: {args.config}")
    store = open_store(settings.paths.data_dir, settings.paths.workbook)
    try:
        _status_table(console, store, settings)
    finally:
        store.close()
    return EXIT_OK


OUTBOX_ORDER = ("sent", "queued", "dry-run", "failed", "bounced", "suppressed")


def _status_table(console: Console, store, settings: Settings) -> None:
    """What staff read: Vietnamese labels, local times as dd/mm/yyyy HH:MM."""
    from .replies import kind_label, short_time
    from .workbook import OUTBOX_LABELS, status_label, unit_summaries

    reference = load_reference(settings.paths.reference_dir)
    table = RichTable("Đơn vị", "Trạng thái", "Lần nộp", "Nộp lúc", "Trễ hạn", "Hợp lệ",
                      "Cấp tỉnh", "Cấp huyện", "Dòng lỗi", "Độ phủ NTM/ĐTVM")
    for item in unit_summaries(store, reference):
        coverage = item["coverage"]
        table.add_row(item["unit"].name,  # type: ignore[union-attr]
                      status_label(item["status"]),  # type: ignore[arg-type]
                      str(item["count"]), short_time(item["received_at"]),  # type: ignore[arg-type]
                      "có" if item["late"] else "", str(item["valid"]),
                      str(item["provincial"]), str(item["district"]), str(item["invalid"]),
                      f"{coverage:.0%}" if coverage is not None else "—")
    console.print(table)
    last = store.last_event("cycle")
    console.print(f"Lần quét hộp thư thành công gần nhất: "
                  f"{short_time(last) + ' (giờ Việt Nam)' if last else 'chưa có'}")
    counts = {r[0]: r[1] for r in store.query("SELECT state, COUNT(*) FROM outbox GROUP BY state")}
    parts = [f"{counts[state]} {OUTBOX_LABELS.get(state, state).lower()}"
             for state in sorted(counts, key=lambda state: OUTBOX_ORDER.index(state)
                                 if state in OUTBOX_ORDER else len(OUTBOX_ORDER))]
    console.print(f"Hộp thư đi: {', '.join(parts) if parts else 'trống'}")
    for row in store.query("SELECT recipient, kind, last_error FROM outbox WHERE state='failed'"):
        console.print(f"[red]Gửi lỗi[/] {kind_label(row['kind'])} → {row['recipient']}: "
                      f"{row['last_error']}")


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rewrite the consolidated workbook from the state store.

    Example: intake rebuild
    """
    from .pipeline import rebuild

    print(rebuild(settings))
    return EXIT_OK


def cmd_init(args: argparse.Namespace, settings: Settings | None) -> int:
    """Write a starter deployment: config, templates and reference samples.

    Example: intake init /srv/intake
    """
    target = Path(args.directory)
    if (target / "config" / "intake.toml").exists():
        print(f"error: {target}/config/intake.toml already exists", file=sys.stderr)
        return EXIT_USAGE
    (target / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "config" / "intake.toml", target / "config" / "intake.toml")
    shutil.copytree(ROOT / "config" / "reference", target / "config" / "reference",
                    dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", target / "templates", dirs_exist_ok=True)
    config = (target / "config" / "intake.toml").resolve()
    print(INIT_NEXT_STEPS.format(target=target.resolve(), config=config))
    return EXIT_OK


INIT_NEXT_STEPS = """\
Wrote a deployment in {target}:
  config/intake.toml   the configuration (every key is documented in it)
  config/reference/    units, communes and party cells: SAMPLES, replace them
  templates/           the reply texts staff may edit

Next steps:
  1. Edit {config}:
     [board] and [campaign] (year, deadline), [mailbox] and [smtp] username,
     [rules] staff (who gets the digest and alerts).
  2. Replace the sample lists in {target}/config/reference with the board's own.
  3. Put the Gmail app password in the environment (never in the file):
       export INTAKE_IMAP_PASSWORD='abcd efgh ijkl mnop'
       export INTAKE_SMTP_PASSWORD="$INTAKE_IMAP_PASSWORD"
  4. Try it without sending anything:
       cd {target} && INTAKE_SMTP__DRY_RUN=true intake poll && intake status
  5. Run it as a service: see "Running as a service" in the README.
(Commands run in {target} or below it find this configuration by themselves.)"""


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="intake", description="Tiếp nhận danh sách Chi đoàn kiểu mẫu gửi qua thư điện tử.")
    main_parser.add_argument("--config", type=Path, default=None,
                             help="configuration file (default: $INTAKE_CONFIG, else "
                                  "config/intake.toml here or in a folder above)")
    main_parser.add_argument("-v", "--verbose", action="store_true",
                             help="log every step (intake run logs each message and job "
                                  "without it)")
    sub = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable) -> argparse.ArgumentParser:
        doc = func.__doc__ or ""
        command = sub.add_parser(name, help=doc.splitlines()[0], description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        command.set_defaults(func=func)
        return command

    add("demo", cmd_demo)
    run = add("run", cmd_run)
    run.add_argument("--interval", type=float, default=None, help="minutes between polls")
    poll = add("poll", cmd_poll)
    poll.add_argument("--backlog", action="store_true",
                      help="also take the mail that was there before the first start")
    check = add("check", cmd_check)
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--unit", metavar="CODE")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--annotate", metavar="DIR")
    template = add("template", cmd_template)
    template.add_argument("--unit", metavar="CODE")
    template.add_argument("-o", "--output", required=True, metavar="FILE")
    add("status", cmd_status)
    add("rebuild", cmd_rebuild)
    init = add("init", cmd_init)
    init.add_argument("directory", metavar="DIR")
    return main_parser


class _LocalTime(logging.Formatter):
    """Log times in the board's time zone with its offset, whatever the machine's zone:
    one time zone in the journal, the one people read."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, TZ).isoformat(timespec="seconds")


def _logging(command: str, verbose: bool) -> None:
    """``-v``: every step of everything. Otherwise ``intake run`` logs intake's own INFO
    lines (each message and each job: a journal worth reading) and the other commands
    only warnings; the scheduler's own chatter stays out either way."""
    handler = logging.StreamHandler()
    handler.setFormatter(_LocalTime("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if not verbose and command == "run":
        logging.getLogger("intake").setLevel(logging.INFO)


PRIVATE_UMASK = 0o027  # files 0640, folders 0750: the owner and the staff group only


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # The store, the archive and the workbook hold personal data (names, phone numbers):
    # never readable by other users, whatever umask the shell or cron started us with.
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
    _logging(args.command, args.verbose)
    try:
        if args.command == "init":
            return cmd_init(args, None)
        args.config = find_config(args.config).resolve()
        logging.getLogger("intake").info("configuration %s", args.config)
        settings = load_settings(args.config)
        return int(args.func(args, settings))
    except IntakeError as exc:
        print(f"error: {exc}" + (f" (hint: {exc.hint})" if exc.hint else ""), file=sys.stderr)
        return EXIT_FINDINGS if args.command in ("poll", "run") else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
