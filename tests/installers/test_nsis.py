"""The Windows installer script compiles with makensis (Debian's nsis) against a placeholder
payload: the script is known to build before the release workflow runs it on Windows."""

from __future__ import annotations

import shutil
from pathlib import Path

from installers.windows import nsis

SCRIPT = nsis.SCRIPT.read_text()


def test_the_nsis_script_compiles_into_an_installer(tmp_path: Path) -> None:
    assert shutil.which("makensis"), "makensis is missing: apt-get install nsis (.ci/run does)"
    payload = tmp_path / "hearth"
    (payload / "_internal").mkdir(parents=True)
    (payload / "hearth.exe").write_bytes(b"MZ placeholder")
    (payload / "_internal" / "python311.dll").write_bytes(b"placeholder")
    out = nsis.compile_script(payload, tmp_path / "Hearth-0.1.0-windows-x64-cpu-setup.exe", "0.1.0")
    data = out.read_bytes()
    assert data[:2] == b"MZ" and b"Nullsoft" in data
    assert len(data) > 50_000  # the NSIS stub, the UI and the payload


def test_per_user_install_without_administrator_rights() -> None:
    assert "RequestExecutionLevel user" in SCRIPT
    assert 'InstallDir "$LOCALAPPDATA\\Programs\\Hearth"' in SCRIPT
    assert "HKLM" not in SCRIPT  # only the user's own registry hive
    assert 'CreateShortcut "$SMPROGRAMS\\Hearth\\Hearth.lnk"' in SCRIPT


def test_uninstalling_keeps_the_users_data_unless_ticked() -> None:
    app_section = SCRIPT.split('Section "un.Hearth"')[1].split("SectionEnd")[0]
    assert "$LOCALAPPDATA\\Hearth" not in app_section and "USERDATA" not in app_section
    data_section = SCRIPT.split("Section /o")[1].split("SectionEnd")[0]  # /o: unticked by default
    assert "un.Also delete my chats, settings and downloaded models" in data_section
    assert 'RMDir /r "${USERDATA}"' in data_section
    assert '!define USERDATA "$LOCALAPPDATA\\Hearth"' in SCRIPT  # platformdirs' folder for Hearth on Windows
