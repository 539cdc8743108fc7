"""Optional command/check modules: absent ones are skipped, broken ones are errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hgm.cli.common import import_optional


def test_missing_module_is_none_and_broken_module_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hgm_broken_cmd.py").write_text("import hgm_no_such_dependency\n")
    (tmp_path / "hgm_fine_cmd.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_optional("hgm_absent_cmd") is None
    assert import_optional("hgm_fine_cmd").VALUE == 3
    with pytest.raises(ModuleNotFoundError, match="hgm_no_such_dependency"):
        import_optional("hgm_broken_cmd")
    for name in ("hgm_fine_cmd", "hgm_broken_cmd"):
        sys.modules.pop(name, None)
