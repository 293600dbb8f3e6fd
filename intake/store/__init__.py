"""The state store: SQLite, the one source of truth, and every query the program makes.

Everything else (the workbook, the replies, ``intake status``) is a view of it. Each step
of a cycle commits before the next one starts, so a crash leaves a state the next cycle
can finish from: a message is recorded before it is filed, a reply is queued (with its
Message-ID) before it is sent, and moved only when it is fully answered.

The queries are grouped by what they serve: ``messages`` (the mailbox side and staff's
waiting list), ``submissions`` (lists, rows, findings, acceptances, unit summaries),
``outbox`` (replies) and ``events`` (events, settings kept in ``meta``, staff actions,
added sender addresses). No module outside this package holds an SQL string; a test
checks it.
"""

from .db import WAITING, Stage, Status, Store, now_iso, open_store
from .schema import MIGRATIONS, SCHEMA_VERSION, statements

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "WAITING", "Stage", "Status", "Store", "now_iso",
           "open_store", "statements"]
