"""Command line (SPEC §8). Parses arguments and calls the library; nothing else lives here."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from .config import TZ, Settings, find_config, load_settings
from .errors import IntakeError
from .reference import load_reference
from .store import events, outbox, units

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


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
    from concurrent.futures import ThreadPoolExecutor

    from .sheets.read import read_file
    from .sheets.report import check_reads

    paths = [Path(p) for p in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: file not found: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    files = [(p.name, p.read_bytes()) for p in paths]
    # The files are read (in the sandboxed reader, a process of its own) while the
    # reference lists load here: neither needs the other.
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(lambda: [r for name, data in files
                                       for r in read_file(name, data, settings.limits)])
        reference = load_reference(settings.paths.reference_dir)
        unit = None
        if args.unit:
            unit = reference.units.get(args.unit.upper()) or reference.unit_by_text(args.unit)
            if unit is None:
                print(f"error: unknown unit {args.unit!r} (known: {', '.join(reference.units)})",
                      file=sys.stderr)
                reading.cancel()
                return EXIT_USAGE
        reads = reading.result()
    report = check_reads(reads, reference, settings, unit)
    if args.format == "json":
        # Compact, through the C encoder, one finding at a time: indent=2 falls back to
        # the Python encoder, and one dump holds every finding twice (as dicts and as
        # text), which tripled peak memory on a file with 100,000. Every finding is kept.
        sys.stdout.writelines(report.json_chunks())
    else:
        _print_report(report)
    if args.annotate:
        from .sheets.annotate import annotate_report

        for path in annotate_report(report, Path(args.annotate)):
            print(f"annotated: {path}", file=sys.stderr)
    return EXIT_FINDINGS if report.errors else EXIT_OK


def _print_report(report) -> None:
    console = _console()
    unknown = "(không xác định được đơn vị)"
    units = {f.unit.name if f.unit else unknown for f in report.files}
    if len(units) <= 1:  # one unit for all files: said once; else after each file
        console.print(f"Đơn vị: {report.unit.name if report.unit else unknown}")
    for file in report.files:
        own = f" ({file.unit.name})" if len(units) > 1 and file.unit else ""
        console.print(f"[bold]{file.file}[/]{own}: {len(file.results)} dòng, "
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




def _status_table(console: Console, store, settings: Settings) -> None:
    """What staff read: Vietnamese labels, local times as dd/mm/yyyy HH:MM."""
    from .labels import kind_label, status_label
    from .replies import short_time

    reference = load_reference(settings.paths.reference_dir)
    table = RichTable("Đơn vị", "Trạng thái", "Lần nộp", "Nộp lúc", "Trễ hạn", "Hợp lệ",
                      "Cấp tỉnh", "Cấp huyện", "Dòng lỗi", "Độ phủ NTM/ĐTVM")
    for item in units.summaries(store, reference):
        coverage = item.coverage
        table.add_row(item.unit.name, status_label(item.status), str(item.submissions),
                      short_time(item.received_at), "có" if item.late else "", str(item.valid),
                      str(item.provincial), str(item.district), str(item.invalid),
                      f"{coverage:.0%}" if coverage is not None else "—")
    console.print(table)
    from .mail.smtp import status_lines

    last = store.last_event("cycle")
    console.print(f"Lần quét hộp thư thành công gần nhất: "
                  f"{short_time(last) + ' (giờ Việt Nam)' if last else 'chưa có'}")
    for line in status_lines(store):
        console.print(line, markup=False)
    failed = outbox.in_state(store, "failed")
    for row in failed:
        console.print(f"[red]Gửi lỗi[/] (thư số {row['id']}) {kind_label(row['kind'])} → "
                      f"{row['recipient']}: "
                      f"{row['last_error']}", highlight=False)
    if failed:
        console.print("Gửi lại sau khi đã khắc phục: intake resend --id SỐ (hoặc --all-failed)")
    _staff_lines(console, store, reference)


def _staff_lines(console: Console, store, reference) -> None:
    """What waits for staff, the addresses they added and what they decided lately (§10)."""
    from .replies import short_time
    from .staff import waiting as waiting_for_staff

    waiting = len(waiting_for_staff(store))
    console.print(f"Thư chờ Ban xem xét: {waiting}" + (" (xem: intake review)" if waiting else ""))
    for row in events.addresses(store):
        unit = reference.units.get(row["unit_code"])
        console.print(f"Địa chỉ Ban bổ sung: {row['address']} → "
                      f"{unit.name if unit else row['unit_code']} ({row['actor']}, "
                      f"{short_time(row['at'])})", highlight=False)
    from .labels import ACTION_LABELS

    for row in events.actions(store, last=10):
        what = ACTION_LABELS.get(row["action"], row["action"]).lower()
        detail = "; ".join(x for x in (row["detail"][:120], row["note"]) if x)
        console.print(f"Việc của Ban: {short_time(row['at'])} "
                      f"{row['actor']} {what} {row['unit_code'] or ''} {detail}".rstrip(),
                      highlight=False, markup=False)


def cmd_resend(args: argparse.Namespace, settings: Settings) -> int:
    """Put failed replies back in the outbox queue, to be sent again.

    A reply fails for good only when the server refused it permanently (5xx) or kept
    refusing it for [smtp] give_up_after_hours; `intake status` lists them with their
    number. Once the cause is fixed, this sends them again: the running service
    (`intake run`) sends them at its next round, `intake poll` at once. A queued reply
    named by --id is made due now. Exit 0; 2 when an id is unknown or already sent.

    --rebuild renders the reply again from what it says, with today's templates (after
    a template was fixed), keeping its attachments; it goes out with a new Message-ID.

    Example: intake resend --id 42
             intake resend --all-failed
             intake resend --id 42 --rebuild
    """
    from .mail.smtp import rebuild, requeue
    from .replies import check_templates
    from .store import open_store

    store = open_store(settings.paths.data_dir)
    render = None
    as_they_were: list[int] = []  # --all-failed: replies kept without content go unchanged
    if args.rebuild:
        env = check_templates(settings.paths.templates_dir)

        def render(row_id: int) -> None:
            if not rebuild(store, settings, env, row_id, strict=not args.all_failed):
                as_they_were.append(row_id)
    try:
        ids = requeue(store, args.id, all_failed=args.all_failed, render=render)
    except KeyError as exc:
        row_id, state = exc.args
        reason = (state if state and " " in state else f"it is {state}, not failed" if state
                  else "no such reply in the outbox")
        print(f"error: reply {row_id}: {reason} (see intake status)", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    if ids:
        print(f"Đã đưa lại {len(ids)} thư vào hàng đợi gửi (số {', '.join(map(str, ids))}).")
        if as_they_were:
            print(f"Thư số {', '.join(map(str, as_they_were))} được gửi lại nguyên như cũ "
                  "(không lưu nội dung để soạn lại theo mẫu mới).")
    else:
        print("Không có thư gửi lỗi nào.")
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rewrite the consolidated workbook from the state store.

    Example: intake rebuild
    """
    from .workbook import rebuild

    print(rebuild(settings))
    return EXIT_OK


@contextmanager
def _staff_step(settings: Settings):
    """A staff decision: in its turn beside `intake run`, then replies sent and the message
    moved at once where the servers answer (else by the next cycle)."""
    from .locks import cycle_lock
    from .mail import smtp
    from .mail.oauth import imap_secret
    from .pipeline import Pipeline
    from .staff import relocate_now

    pipeline = Pipeline(settings)
    try:
        with cycle_lock(settings.paths.data_dir, on_wait=lambda: print(
                "waiting for the running intake step to finish…", file=sys.stderr)):
            yield pipeline
            smtp.deliver(pipeline.store, settings)
            problem = relocate_now(pipeline, imap_secret(settings))
            if problem:
                print(f"note: {problem}", file=sys.stderr)
            pipeline.store.event("staff")
            from .workbook import write as write_workbook

            write_workbook(pipeline.store, pipeline.reference, settings)
    finally:
        pipeline.store.close()


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    """List the messages waiting for staff (held, unknown sender, set aside after failing).

    Each has a token to give to `intake release` or `intake reject`.

    Example: intake review --format json
    """
    from .pipeline import Pipeline
    from .staff import waiting

    pipeline = Pipeline(settings)
    try:
        items = waiting(pipeline.store)
    finally:
        pipeline.store.close()
    if args.format == "json":
        print(json.dumps({"waiting": [w.as_json() for w in items]}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not items:
        print("Không có thư nào chờ Ban xem xét.")
        return EXIT_OK

    from .labels import status_label
    from .replies import short_time

    table = RichTable("Mã thư", "Trạng thái", "Nhận lúc", "Người gửi", "Tiêu đề", "Lý do",
                      "Tệp đính kèm")
    for item in items:
        table.add_row(item.token, status_label(item.status),
                      short_time(item.received_at), item.sender,
                      item.subject, item.reason, item.attachments)
    _console().print(table)
    return EXIT_OK


def cmd_release(args: argparse.Namespace, settings: Settings) -> int:
    """File a waiting message as its unit's submission, trusting the sender on staff's word.

    The original received time is kept for the deadline; the unit gets its reply, threaded
    under its own message; the message moves from the review to the processed folder.
    ID is the token `intake review` shows. Exit 2 when ID is unknown or not waiting.

    Example: intake release K7QM-2XDH --unit CT --note "Đồng chí Bí thư gửi từ thư cá nhân"
    """
    from .staff import cli_actor, release

    with _staff_step(settings) as pipeline:
        print(release(pipeline, args.id, unit_code=args.unit, note=args.note or "",
                      actor=cli_actor()))
    return EXIT_OK


def cmd_reject(args: argparse.Namespace, settings: Settings) -> int:
    """Close a waiting message without filing it or answering the sender.

    Example: intake reject K7QM-2XDH --note "Thư quảng cáo"
    """
    from .staff import cli_actor, reject

    with _staff_step(settings) as pipeline:
        print(reject(pipeline, args.id, note=args.note or "", actor=cli_actor()))
    return EXIT_OK


def cmd_assign(args: argparse.Namespace, settings: Settings) -> int:
    """Add ADDRESS as a sender address of unit CODE and release what it sent.

    Kept in the store beside units.csv (shown by `intake status`). Exit 2 for an unknown
    unit.

    Example: intake assign bithu.chauthanh@gmail.com CT
    """
    from .staff import assign, cli_actor

    with _staff_step(settings) as pipeline:
        for line in assign(pipeline, args.address, args.code, actor=cli_actor()):
            print(line)
    return EXIT_OK


def cmd_recheck(args: argparse.Namespace, settings: Settings) -> int:
    """Check every current submission again against today's reference lists and rules.

    Reads each unit's files from the archive, prints what changed (rows now valid or now
    wrong, findings gone or new) and rebuilds the workbook. With --notify, each unit whose
    status or errors changed gets a fresh reply.

    Example: intake recheck --unit CT --notify
    """
    from .recheck import recheck
    from .staff import StaffError, cli_actor

    if args.unit and args.unit.upper() not in load_reference(settings.paths.reference_dir).units:
        raise StaffError(f"không có đơn vị mã {args.unit!r}")
    with _staff_step(settings) as pipeline:
        result = recheck(pipeline, unit_code=args.unit, notify=args.notify, actor=cli_actor())
        for line in result.lines():
            print(line)
    return EXIT_OK


def cmd_accept(args: argparse.Namespace, settings: Settings) -> int:
    """Accept a row against one finding, on the board's decision (the rules leave room).

    The row then counts as valid; the finding stays visible as "Ban chấp nhận: NOTE", and
    the decision holds through `intake recheck` and later lists of the unit. HAMLET is the
    hamlet or its party cell as the unit wrote it; --commune picks one when the name
    occurs in two communes of the unit.

    Example: intake accept CT "Ấp Phú Hòa" ROW_MEMBERS_BELOW_MIN --note "Ban đồng ý, ấp nhỏ"
    """
    from .staff import accept, cli_actor

    with _staff_step(settings) as pipeline:
        for line in accept(pipeline, args.code, args.hamlet, args.finding, note=args.note,
                           commune=args.commune, actor=cli_actor()):
            print(line)
    return EXIT_OK


def cmd_init(args: argparse.Namespace, settings: Settings | None) -> int:
    """Write a starter deployment: config, templates and reference samples.

    Example: intake init /srv/intake
    """
    target = Path(args.directory)
    if (target / "config" / "intake.toml").exists():
        print(f"error: {target}/config/intake.toml already exists", file=sys.stderr)
        return EXIT_USAGE
    defaults = files("intake") / "defaults"  # package data: works from a wheel too
    _copy_tree(defaults / "config", target / "config", skip={"__pycache__"})
    _copy_tree(defaults / "templates", target / "templates", skip={"__pycache__"})
    config = (target / "config" / "intake.toml").resolve()
    print(INIT_NEXT_STEPS.format(target=target.resolve(), config=config))
    return EXIT_OK


def _copy_tree(source: Traversable, target: Path, skip: set[str]) -> None:
    """Copy package data (files or a zip, whatever the installation) into a folder."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            _copy_tree(item, target / item.name, skip)
        elif not (target / item.name).exists():
            (target / item.name).write_bytes(item.read_bytes())


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
    resend = add("resend", cmd_resend)
    which = resend.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, action="append", metavar="N",
                       help="the reply's number shown by intake status (repeatable)")
    which.add_argument("--all-failed", action="store_true", help="every failed reply")
    resend.add_argument("--rebuild", action="store_true",
                        help="render again with today's templates before sending")
    add("rebuild", cmd_rebuild)
    review = add("review", cmd_review)
    review.add_argument("--format", choices=("text", "json"), default="text")
    for name, func in (("release", cmd_release), ("reject", cmd_reject)):
        decision = add(name, func)
        decision.add_argument("id", metavar="ID", help="the token `intake review` shows")
        if name == "release":
            decision.add_argument("--unit", metavar="CODE",
                                  help="the unit, for a sender not yet registered")
        decision.add_argument("--note", metavar="TEXT", help="why, for the record")
    assign_cmd = add("assign", cmd_assign)
    assign_cmd.add_argument("address", metavar="ADDRESS")
    assign_cmd.add_argument("code", metavar="CODE")
    recheck_cmd = add("recheck", cmd_recheck)
    recheck_cmd.add_argument("--unit", metavar="CODE")
    recheck_cmd.add_argument("--notify", action="store_true",
                             help="send a fresh reply to each unit whose result changed")
    accept_cmd = add("accept", cmd_accept)
    accept_cmd.add_argument("code", metavar="CODE", help="the unit")
    accept_cmd.add_argument("hamlet", metavar="HAMLET")
    accept_cmd.add_argument("finding", metavar="FINDING", help="e.g. ROW_MEMBERS_BELOW_MIN")
    accept_cmd.add_argument("--note", required=True, metavar="TEXT",
                            help="the board's reason, shown beside the finding")
    accept_cmd.add_argument("--commune", metavar="NAME")
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
    except OSError as exc:  # a path a person gave (-o, --annotate) cannot be written or read
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc} (hint: check the path and its permissions)",
              file=sys.stderr)
        return EXIT_FINDINGS if args.command in ("poll", "run") else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
