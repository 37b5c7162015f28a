"""`train-fou bench` run in the test's process, its JSON read back."""
from __future__ import annotations

import json


def bench_json(capsys, *args: str) -> dict:
    """`train-fou bench ARGS --json`: asserts it exits 0 and returns its JSON (stdout's last line)."""
    from train_fou.cli import main
    assert main(['bench', *args, '--json']) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])
