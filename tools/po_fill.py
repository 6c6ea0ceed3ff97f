"""Fill msgstr entries of the Chinese catalog from a JSON object {msgid: translation}.

Usage: .venv/bin/python tools/po_fill.py new.json   (then `make translations` to compile)
Lists the msgids still untranslated afterwards, so nothing is forgotten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

CATALOG = Path(__file__).resolve().parent.parent / "translations" / "zh" / "LC_MESSAGES" / "messages.po"


def main(argv: list[str]) -> int:
    """Merge the given translations into the catalog and report what is left."""
    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="zh")
    for path in argv:
        for msgid, text in json.loads(Path(path).read_text(encoding="utf-8")).items():
            message = catalog.get(msgid)
            if message is None:
                print(f"not in catalog (run make translations-update first): {msgid!r}", file=sys.stderr)
                continue
            message.string = text
    with CATALOG.open("wb") as f:
        write_po(f, catalog, width=0, omit_header=False, sort_output=False)
    missing = [m.id for m in catalog if m.id and not m.string]
    for msgid in missing:
        print(f"untranslated: {msgid!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
