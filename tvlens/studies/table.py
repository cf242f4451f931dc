"""A tidy table of study results: one row per measurement, plain Python values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tvlens._records import Records


@dataclass
class StudyTable(Records):
    """Rows ``{column: value}`` with the same keys, plus what produced them.

    Attributes:
        records: the rows (plain numbers and strings).
        name: what the table measures.
        settings: the settings of the study (model names, seeds, prompt counts …).
        notes: things the study skipped or could not measure, and why.
    """

    records: list[dict[str, Any]]
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return list(self.records[0]) if self.records else []

    def select(self, **equal: Any) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values, e.g. ``table.select(method="icl", n_shots=10)``."""
        unknown = [key for key in equal if key not in self.columns]
        if unknown:
            raise KeyError(f"columns {unknown} are not in this table; columns are {self.columns}")
        return [r for r in self.records if all(r[k] == v for k, v in equal.items())]

    def value(self, column: str, **equal: Any) -> Any:
        """``column`` of the single row matching ``equal``."""
        rows = self.select(**equal)
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} rows match {equal}; expected exactly one")
        return rows[0][column]

    def to_records(self) -> list[dict[str, Any]]:
        """The rows."""
        return [dict(row) for row in self.records]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "settings": self.settings, "notes": self.notes, "records": self.records}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyTable:
        return cls(records=list(data["records"]), name=data["name"], settings=dict(data.get("settings", {})),
                   notes=list(data.get("notes", [])))

    def to_markdown(self, digits: int = 3) -> str:
        """The table as GitHub markdown (floats rounded to ``digits``)."""
        cols = self.columns
        fmt = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for r in self.records for v in r.values()]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for i in range(len(self.records)):
            lines.append("| " + " | ".join(fmt[i * len(cols):(i + 1) * len(cols)]) + " |")
        return "\n".join(lines)


__all__ = ["StudyTable"]
