"""The README's "Bad input" table is what the CLI really says: regenerated here and compared."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO

START, END = "<!-- bad-input-table: start (tools/bad_input_table.py) -->", "<!-- bad-input-table: end -->"


def test_readme_bad_input_table_is_current():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bad_input_table.py")], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.strip()
    # Every row: one documented error line, no traceback, a non-zero code.
    for row in table.splitlines()[2:]:
        assert "NOT ONE ERROR LINE" not in row, row
        code = int(row.split("|")[2])
        assert code not in (0, 1), row
    readme = (REPO / "README.md").read_text()
    found = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), readme, re.S)
    assert found, "README.md lacks the bad-input table markers"
    assert found.group(1).strip() == table, "README's bad-input table is stale: paste `python3 tools/bad_input_table.py`"
