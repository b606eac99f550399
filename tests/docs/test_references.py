"""The repository stands alone: every file that docs/, the README, scripts and code comments point
to is in it, and no page sends a reader to a package index where simhive is not published.

A reference is a markdown link (relative to its page; with its #heading), or a repository path
such as `docs/routing.md`, `server/core/gateway.py`, `scripts/install` or
`hardware/systemd/*.service` anywhere in the text (relative to the repository root), a bare page
name such as `routing.md` (in docs/), or a bare module name such as `writer.py` (somewhere in
the tree). A path named with another project's name just before it ("Gammu's
tests/at-sms/03.dump", "python-gsmmodem's test/test_pdu.py") is in that project, not here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", ".git", "build", "dist", "demo-state", "__pycache__", ".mypy_cache"}
SKIP_DIRS |= {".ruff_cache", ".pytest_cache", ".hypothesis"}
# Source, docs and deploy files; fixture data (captured modem transcripts, *.txt) is not prose.
TEXT = {".md", ".py", ".toml", ".yaml", ".service", ".rules", ".cfg"}
TOP = ("docs", "server", "agent", "hardware", "scripts", "tests", "bench", "simhive")
OTHER_PROJECTS = ("Gammu", "python-gammu", "python-gsmmodem")

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_REPO_PATH = re.compile(rf"(?<![\w./~:$@-])((?:{'|'.join(TOP)})/[\w.*/-]*)")
_ANY_PATH = re.compile(
    r"(?<![\w./~:$@{-])((?:[\w-]+/)+[\w*-]+\.(?:md|py|yaml|dump|service|rules))\b"
)
_PAGE = re.compile(r"(?<![\w./~:$@-])([\w-]+\.md)\b")
_MODULE = re.compile(r"(?<![\w./~:$@{-])(\w+\.py)\b")


def _files() -> Iterator[Path]:
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        # simhive/ holds symlinks to the top-level folders: each file is read once, from there
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not (here / d).is_symlink()]
        for name in names:
            path = here / name
            if (path.suffix in TEXT or here.name == "scripts") and path != Path(__file__):
                yield path  # (this file's own probes name missing files on purpose)


FILES = sorted(_files())
# A bare module name ("see writer.py") is fine when a file of that name is in the tree.
MODULES = {path.name for path in FILES if path.suffix == ".py"} | {Path(__file__).name}


def _external(text: str, start: int) -> bool:
    before = text[max(0, start - 60) : start]
    return any(name in before for name in OTHER_PROJECTS)


def _exists(base: Path, target: str) -> bool:
    target = target.rstrip(".,;:")
    if "*" in target:
        return any(base.glob(target.rstrip("/")))
    return (base / target).exists()


def missing_references(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    rel = path.relative_to(ROOT)
    missing = []
    for m in _REPO_PATH.finditer(text):
        target = m.group(1)
        if not _external(text, m.start()) and not _exists(ROOT, target):
            missing.append(f"{rel}: {target}")
    for m in _ANY_PATH.finditer(text):
        target = m.group(1)
        if target.startswith(TOP) or _external(text, m.start()):
            continue
        if not (_exists(ROOT, target) or _exists(path.parent, target)):
            missing.append(f"{rel}: {target}")
    for m in _PAGE.finditer(text):
        page = m.group(1)
        if not any(_exists(base, page) for base in (path.parent, ROOT, ROOT / "docs")):
            missing.append(f"{rel}: {page}")
    for m in _MODULE.finditer(text):
        if m.group(1) not in MODULES and not _external(text, m.start()):
            missing.append(f"{rel}: {m.group(1)}")
    if path.suffix == ".md":
        for m in _LINK.finditer(text):
            target, _, anchor = m.group(1).partition("#")
            if re.match(r"^[a-z]+:", target):
                continue
            page = path.parent / target if target else path
            if not page.exists():
                missing.append(f"{rel}: link {m.group(1)}")
            elif anchor and page.suffix == ".md" and anchor not in _anchors(page):
                missing.append(f"{rel}: link {m.group(1)} (no such heading)")
    return missing


def _anchors(page: Path) -> set[str]:
    """The fragment each heading gets when the page is rendered (GitHub's rule: lower case,
    punctuation dropped, spaces to hyphens)."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_referenced_file_exists() -> None:
    assert len(FILES) > 200  # the walk found the tree
    missing = [ref for path in FILES for ref in missing_references(path)]
    assert missing == []


def test_the_checker_catches_what_it_is_for(tmp_path: Path) -> None:
    """Each kind of reference, when broken, is reported (the walk above must not pass vacuously)."""
    page = ROOT / "docs" / "_probe_for_test.md"
    page.write_text(
        "# A heading\n[a](nowhere.md) `server/nowhere.py` see gone.md and "
        "hardware/systemd/*.nothing, and foo/bar.py; Gammu's tests/at-x/1.dump is Gammu's. "
        "[b](#a-heading) [c](#no-heading) [d](hardware.md#raspberry-pi-specifics) "
        "writer.py and nomodule.py\n"
    )
    try:
        found = missing_references(page)
    finally:
        page.unlink()
    assert sorted(found) == sorted(
        f"docs/_probe_for_test.md: {ref}"
        for ref in (
            "server/nowhere.py",
            "hardware/systemd/*.nothing",
            "foo/bar.py",
            "gone.md",
            "nowhere.md",
            "link nowhere.md",
            "link #no-heading (no such heading)",
            "nomodule.py",
        )
    )


PAGES = "|".join(sorted(p.stem for p in (ROOT / "docs").glob("*.md")))
# "compat-api.md section 8", "compat-api.md 1.6", "compat-api 9": the docs number no sections, so
# such a reference points into some other text.
_SECTION = re.compile(
    rf"\b(?:(?:{PAGES})\.md,? (?:section |§ ?)?\d|(?:{PAGES}),? (?:section|§) ?\d"
    r"|(?:compat-api|agent-protocol) \d)"
)
# 'docs/compat-api.md, "Status codes"': the quoted heading must be on that page.
_NAMED_SECTION = re.compile(rf'\b((?:{PAGES})\.md),? "([^"]+)"')


def test_section_references_name_real_headings() -> None:
    found = []
    for path in FILES:
        text = path.read_text(errors="replace")
        rel = path.relative_to(ROOT)
        found += [f"{rel}: {m.group(0)}" for m in _SECTION.finditer(text)]
        for m in _NAMED_SECTION.finditer(text):
            headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / m.group(1)).read_text(), re.M)
            # a heading or its start ("SIM pools" for "SIM pools: readiness, room, hand-back")
            if not any(h.strip("` ").startswith(m.group(2)) for h in headings):
                found.append(f"{rel}: {m.group(0)}")
    assert found == []


def test_no_page_points_outside_the_repository() -> None:
    for path in FILES:
        text = path.read_text(errors="replace")
        # Built from pieces so that this file does not itself name what it looks for.
        for pattern in ("DESIGN" + ".md", ".." + "/shared", "spec" + "/"):
            assert pattern not in text, f"{path.relative_to(ROOT)} mentions {pattern}"


_INDEX_INSTALL = re.compile(r"pip3? install [^\n`]*\bsimhive(?:\[[\w,]+\])?['\"]?(?:\s|$|`)")


def test_no_doc_installs_simhive_from_a_package_index() -> None:
    """simhive is not on PyPI: install the wheel (scripts/build-wheel) or use scripts/install."""
    for path in FILES:
        text = path.read_text(errors="replace")
        for m in _INDEX_INSTALL.finditer(text):
            raise AssertionError(f"{path.relative_to(ROOT)}: {m.group(0).strip()}")
