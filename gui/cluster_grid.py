"""Table models of the Cluster view: the broker x partition grid and the topic list."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QBrush, QColor

from core.kafka.cluster import ClusterSnapshot, PartitionState

Index = QModelIndex | QPersistentModelIndex

# Each replica role has a colour AND a glyph with a letter, so the grid reads
# without colour too (colour-blind users, black-and-white printouts).
ROLES: dict[str, tuple[str, QColor]] = {
    "leader": ("\u25c6 L", QColor("#2e7d32")),  # filled diamond, green
    "in-sync": ("\u25cf F", QColor("#1565c0")),  # filled circle, blue
    "out-of-sync": ("\u25cb S", QColor("#ef6c00")),  # hollow circle, orange
    "offline": ("\u2716 X", QColor("#c62828")),  # heavy cross, red
}
LEGEND = (
    "\u25c6 L leader   \u25cf F in-sync follower   "
    "\u25cb S out-of-sync follower   \u2716 X offline replica"
)
FIXED = ("Topic", "Partition")
TAIL = ("Leader", "ISR", "Log start", "HW", "LSO", "Flags")


def _ids(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def partition_tooltip(p: PartitionState, broker_id: int | None = None) -> str:
    """The exact numbers of one partition (and of one replica, if given)."""
    lines = [f"{p.topic}-{p.partition}"]
    if broker_id is not None:
        lines.append(f"broker {broker_id}: {p.role_of(broker_id)}")
    lines += [
        f"leader {_dash(p.leader)} (preferred {_dash(p.preferred_leader)})",
        f"replicas [{_ids(p.replicas)}]  ISR {{{_ids(p.isr)}}}",
        f"offline replicas [{_ids(p.offline_replicas)}]",
        f"min.insync.replicas {_dash(p.min_insync_replicas)}",
        f"log start {_dash(p.log_start_offset)}  high watermark "
        f"{_dash(p.high_watermark)}  last stable {_dash(p.last_stable_offset)}",
        f"flags: {', '.join(p.flags()) or 'none'}",
    ]
    return "\n".join(lines)


class PartitionGridModel(QAbstractTableModel):
    """One row per partition of the shown topics, one column per broker."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[PartitionState] = []
        self._brokers: list[int] = []

    def set_partitions(
        self, partitions: list[PartitionState], brokers: list[int]
    ) -> None:
        """Show ``partitions``; ``brokers`` are the columns (live or assigned)."""
        self.beginResetModel()
        self._rows = partitions
        self._brokers = brokers
        self.endResetModel()

    @property
    def brokers(self) -> list[int]:
        return list(self._brokers)

    def partition_at(self, row: int) -> PartitionState:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(FIXED) + len(self._brokers) + len(TAIL)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = 0
    ) -> Any:
        if (
            orientation != Qt.Orientation.Horizontal
            or role != Qt.ItemDataRole.DisplayRole
        ):
            return None
        broker = section - len(FIXED)
        if section < len(FIXED):
            return FIXED[section]
        if broker < len(self._brokers):
            return f"Broker {self._brokers[broker]}"
        return TAIL[broker - len(self._brokers)]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        p = self._rows[index.row()]
        column = index.column()
        broker = column - len(FIXED)
        if 0 <= broker < len(self._brokers):
            return self._replica_data(p, self._brokers[broker], role)
        if role == Qt.ItemDataRole.ToolTipRole:
            return partition_tooltip(p)
        if role == Qt.ItemDataRole.ForegroundRole and p.flags():
            return QBrush(ROLES["offline" if p.offline else "out-of-sync"][1])
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column < len(FIXED):
            return p.topic if column == 0 else p.partition
        tail = TAIL[broker - len(self._brokers)]
        return {
            "Leader": _dash(p.leader),
            "ISR": _ids(p.isr),
            "Log start": _dash(p.log_start_offset),
            "HW": _dash(p.high_watermark),
            "LSO": _dash(p.last_stable_offset),
            "Flags": " ".join(p.flags()),
        }[tail]

    def _replica_data(self, p: PartitionState, broker_id: int, role: int) -> Any:
        kind = p.role_of(broker_id)
        if kind == "none":
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return ROLES[kind][0]
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(ROLES[kind][1])
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor("white"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return partition_tooltip(p, broker_id)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None

    def role_text(self, row: int, broker_id: int) -> str | None:
        """What the grid shows for ``broker_id`` in ``row`` (for tests)."""
        column = len(FIXED) + self._brokers.index(broker_id)
        value = self.data(self.index(row, column))
        return None if value is None else str(value)


class TopicListModel(QAbstractListModel):
    """Topic names with a problem count, filtered by text and by health."""

    def __init__(self) -> None:
        super().__init__()
        self._all: list[tuple[str, int]] = []
        self._shown: list[tuple[str, int]] = []
        self._text = ""
        self._problems_only = False

    def set_snapshot(self, snapshot: ClusterSnapshot) -> None:
        self._all = sorted(snapshot.problems_per_topic().items())
        self._apply()

    def set_filter(self, text: str, problems_only: bool) -> None:
        self._text, self._problems_only = text.lower(), problems_only
        self._apply()

    def _apply(self) -> None:
        self.beginResetModel()
        self._shown = [
            (name, problems)
            for name, problems in self._all
            if self._text in name.lower() and (problems or not self._problems_only)
        ]
        self.endResetModel()

    def names(self) -> list[str]:
        return [name for name, _ in self._shown]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._shown)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        name, problems = self._shown[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{name}  (\u26a0 {problems})" if problems else name
        if role == Qt.ItemDataRole.UserRole:
            return name
        if role == Qt.ItemDataRole.ForegroundRole and problems:
            return QBrush(ROLES["offline"][1])
        return None
