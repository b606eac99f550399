"""What `simhive-agent doctor` found: one finding per check and subject, each with its fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"
_MARK = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}


@dataclass(frozen=True)
class Finding:
    check: str  # a stable name, e.g. "port.access", "sim.pin", "server.token"
    subject: str  # what was checked: a port, a device, the server URL, "host"
    level: str  # ok | warn | fail
    message: str
    fix: str = ""  # one line; empty for ok findings


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, subject: str, level: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(check, subject, level, message, fix))

    def ok(self, check: str, subject: str, message: str) -> None:
        self.add(check, subject, OK, message)

    def warn(self, check: str, subject: str, message: str, fix: str) -> None:
        self.add(check, subject, WARN, message, fix)

    def fail(self, check: str, subject: str, message: str, fix: str) -> None:
        self.add(check, subject, FAIL, message, fix)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == FAIL]

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "problems": len(self.problems),
            "warnings": sum(f.level == WARN for f in self.findings),
            "findings": [asdict(f) for f in self.findings],
        }

    def render(self) -> str:
        lines: list[str] = []
        subject = None
        for f in self.findings:
            if f.subject != subject:
                subject = f.subject
                lines.append(f"{subject}:")
            lines.append(f"  {_MARK[f.level]} {f.message}")
            if f.fix:
                lines.append(f"       fix: {f.fix}")
        n, w = len(self.problems), sum(f.level == WARN for f in self.findings)
        lines.append(
            "all checks passed" + (f" ({w} warning(s))" if w else "")
            if not n
            else f"{n} problem(s), {w} warning(s)"
        )
        return "\n".join(lines)
