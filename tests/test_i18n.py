"""Every user-visible text has a Simplified Chinese translation with the same placeholders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from triage.config import ROOT

CATALOG = ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def _extracted(tmp_path: Path) -> set[str]:
    pot = tmp_path / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), "-q", "extract", "--no-location", "-F", "babel.cfg", "-k", "_l",
                    "-k", "lazy_gettext", "-o", str(pot), "."], cwd=ROOT, check=True)
    with pot.open("rb") as f:
        return {m.id for m in read_po(f) if m.id and isinstance(m.id, str)}


def test_every_text_in_the_code_is_translated_to_chinese(tmp_path: Path) -> None:
    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="zh")
    translated = {m.id: m.string for m in catalog if m.id and m.string}
    missing = sorted(_extracted(tmp_path) - set(translated))
    assert missing == [], "run `make translations-update`, then translate these:\n" + "\n".join(missing)


def test_translations_keep_their_placeholders() -> None:
    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="zh")
    for message in catalog:
        if message.id and message.string and isinstance(message.id, str):
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(str(message.string))), (
                message.id)
