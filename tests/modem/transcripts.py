"""Loading the transcripts in tests/fixtures/transcripts/ (format in its README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DIR = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"
EOLS = {"CRLF": "\r\n", "CRCRLF": "\r\r\n", "LF": "\n"}


@dataclass
class Transcript:
    name: str
    model: str = ""
    source: str = ""
    eol: str = "\r\n"
    expect: dict[str, str] = field(default_factory=dict)
    replies: dict[str, str] = field(default_factory=dict)


def load(path: Path) -> Transcript:
    t = Transcript(path.stem)
    command: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if command is not None:
            t.replies[command.upper()] = "\n".join(lines)

    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# model:"):
            t.model = raw.split(":", 1)[1].strip()
        elif raw.startswith("# source:"):
            t.source = raw.split(":", 1)[1].strip()
        elif raw.startswith("# eol:"):
            t.eol = EOLS[raw.split(":", 1)[1].strip()]
        elif raw.startswith("# expect "):
            key, _, value = raw[len("# expect ") :].partition(":")
            t.expect[key.strip()] = value.strip()
        elif raw.startswith("> "):
            flush()
            command, lines = raw[2:].strip(), []
        elif raw.startswith("<"):
            lines.append(raw[2:] if raw.startswith("< ") else "")
    flush()
    return t


def sessions() -> list[Path]:
    return sorted(p for p in DIR.glob("*.txt") if not p.name.startswith("gammu-"))


@dataclass
class Dump:
    title: str
    command: str
    reply: list[str]
    expect: dict[str, str]


def load_dumps(path: Path) -> list[Dump]:
    out: list[Dump] = []
    for block in path.read_text(encoding="utf-8").split("\n## ")[1:]:
        title, *rest = block.splitlines()
        command = next(line[2:].strip() for line in rest if line.startswith("> "))
        reply = [line[2:] if line.startswith("< ") else "" for line in rest if line.startswith("<")]
        expect = {}
        for line in rest:
            if line.startswith("= "):
                key, _, value = line[2:].partition(":")
                expect[key.strip()] = value.strip()
        out.append(Dump(title.strip(), command, reply, expect))
    return out
