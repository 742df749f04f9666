"""Every file a docstring or comment points at is in the repository (the design notes the code
refers to live in docs/, not in a folder beside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for folder in ("agent/src", "analytics/src", "kibana/src", "tests", "bench")
    for p in (ROOT / folder).rglob("*.py")
    if p != Path(__file__).resolve()
]
# A repository path: starts at a top-level folder, ends with a file extension.
PATH_RE = re.compile(
    r"(?<![\w./-])((?:agent|analytics|kibana|tests|bench|docs|docker)/[\w./-]*\.(?:py|md|ndjson|yml|json))"
)
# A bare design note such as PLAN.md or ARCHITECTURE.md.
NOTE_RE = re.compile(r"(?<![\w./-])([A-Z][A-Z_]+\.md)\b")


def test_referenced_files_exist() -> None:
    missing = []
    for source in SOURCES:
        text = source.read_text(encoding="utf-8")
        for match in PATH_RE.finditer(text):
            if not (ROOT / match.group(1)).exists():
                missing.append(f"{source.relative_to(ROOT)}: {match.group(1)}")
        for match in NOTE_RE.finditer(text):
            if match.group(1) != "README.md" and not (ROOT / match.group(1)).exists():
                missing.append(f"{source.relative_to(ROOT)}: {match.group(1)}")
    assert not missing, "references to files that are not in the repository:\n" + "\n".join(missing)


def test_the_check_finds_a_dangling_reference(tmp_path: Path) -> None:
    assert PATH_RE.findall("see agent/shipper.py and docs/architecture.md") == [
        "agent/shipper.py",
        "docs/architecture.md",
    ]
    assert NOTE_RE.findall("contract of PLAN.md") == ["PLAN.md"]
