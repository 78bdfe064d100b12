"""The README's promises that code can check: every reason code is explained to the customer."""

from __future__ import annotations

import re

from conftest import REPO

from pkb_letters.records import Reason


def test_readme_explains_every_reason_code_and_no_other():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("### `exceptions.csv` reason codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {code for row in rows for code in re.findall(r"`([a-z0-9-]+)`", row.split("|")[1])}
    assert listed == {reason.value for reason in Reason}
    for row in rows:
        meaning, action = (cell.strip() for cell in row.split("|")[2:4])
        assert meaning and action, row


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", text, flags=re.DOTALL)


def test_readme_command_1_runs_the_shipped_demo_and_command_2_is_what_ci_runs():
    install_and_demo, tests = _shell_blocks((REPO / "README.md").read_text(encoding="utf-8"))[:2]
    assert ".venv/bin/pkb-letters demo --out " in install_and_demo  # what tests/test_install.py runs from a wheel
    assert tests in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
