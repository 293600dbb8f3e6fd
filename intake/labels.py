"""What codes are called where people read them: one place for every view.

The codes (statuses, outbox states, reply kinds, levels) stay where programs read them:
``X-Intake-Status``, JSON, the store. The workbook, ``intake status``, the digest and
replies show these words instead, the same everywhere.
"""

from __future__ import annotations

STATUS_LABELS = {
    "accepted": "Đã tiếp nhận",
    "needs-correction": "Cần sửa",
    "no-attachment": "Không có tệp",
    "unknown-sender": "Người gửi lạ",
    "held": "Chờ Ban xem xét",
    "ignored": "Bỏ qua",
    "rejected-late": "Từ chối (trễ hạn)",
    "staff-command": "Lệnh của cán bộ",
}
OUTBOX_LABELS = {  # in a sentence ("Hộp thư đi: 3 đã gửi, 1 chờ gửi"); capitalise in cells
    "queued": "chờ gửi", "sending": "đang gửi", "sent": "đã gửi",
    "dry-run": "đã ghi ra tệp (chạy thử)", "failed": "gửi lỗi", "bounced": "bị trả lại",
    "suppressed": "không gửi (địa chỉ tự động)",
}
KIND_LABELS = {
    "accepted": "thư tiếp nhận",
    "needs-correction": "thư đề nghị sửa",
    "no-attachment": "thư báo thiếu tệp",
    "unknown-sender": "thư báo địa chỉ chưa đăng ký",
    "rejected-late": "thư báo trễ hạn",
    "reminder": "thư nhắc hạn",
    "digest": "thư tổng hợp hằng ngày",
    "final-report": "báo cáo sau hạn chót",
    "alert": "thư cảnh báo",
    "waiting": "thư báo cán bộ: thư chờ xem xét",
    "staff-command": "thư trả lời lệnh của cán bộ",
    "reference-changed": "thư báo cán bộ: danh sách tham chiếu thay đổi",
}
LEVELS = {"provincial": "Cấp tỉnh", "district": "Cấp huyện"}
ACTION_LABELS = {  # staff decisions (SPEC §10), as Nhật ký and intake status show them
    "release": "Ban duyệt", "reject": "Ban từ chối", "assign": "Ban thêm địa chỉ gửi",
    "recheck": "Ban kiểm tra lại", "accept": "Ban chấp nhận",
}


def status_label(status: str | None) -> str:
    """What a status is called where people read it ("Chưa gửi" for no status yet)."""
    if not status:
        return "Chưa gửi"
    return STATUS_LABELS.get(status, status)


def outbox_label(state: str) -> str:
    return OUTBOX_LABELS.get(state, state)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)
