"""macOS: sign (when an identity is configured), put Hearth.app into a .dmg, notarise (likewise).

APPLE_SIGN_IDENTITY  a "Developer ID Application: …" identity in the keychain; unset: unsigned
APPLE_NOTARY_PROFILE a `xcrun notarytool store-credentials` profile; unset: not notarised
Without them the .dmg is built all the same and the log says what was skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENTITLEMENTS = HERE / "entitlements.plist"


def sign(app: Path, identity: str | None) -> bool:
    if not identity:
        print("dmg: signing skipped: APPLE_SIGN_IDENTITY is not set (the app will be unsigned)")
        return False
    subprocess.run(
        [
            "codesign",
            "--force",
            "--deep",
            "--timestamp",
            "--options",
            "runtime",
            "--entitlements",
            str(ENTITLEMENTS),
            "--sign",
            identity,
            str(app),
        ],
        check=True,
    )
    subprocess.run(["codesign", "--verify", "--deep", "--strict", str(app)], check=True)
    return True


def notarise(dmg: Path, profile: str | None, signed: bool) -> None:
    if not profile or not signed:
        print(
            "dmg: notarisation skipped: " + ("the app is unsigned" if not signed else "APPLE_NOTARY_PROFILE is not set")
        )
        return
    subprocess.run(["xcrun", "notarytool", "submit", str(dmg), "--keychain-profile", profile, "--wait"], check=True)
    subprocess.run(["xcrun", "stapler", "staple", str(dmg)], check=True)


def build_dmg(app: Path, dist: Path, version: str) -> Path:
    signed = sign(app, os.environ.get("APPLE_SIGN_IDENTITY"))
    out = dist / f"Hearth-{version}-macos-arm64.dmg"
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "Hearth"
        stage.mkdir()
        shutil.copytree(app, stage / "Hearth.app", symlinks=True)
        (stage / "Applications").symlink_to("/Applications")  # drag-to-install
        subprocess.run(
            ["hdiutil", "create", "-volname", "Hearth", "-srcfolder", str(stage), "-ov", "-format", "UDZO", str(out)],
            check=True,
        )
    if signed:
        subprocess.run(["codesign", "--sign", os.environ["APPLE_SIGN_IDENTITY"], "--timestamp", str(out)], check=True)
    notarise(out, os.environ.get("APPLE_NOTARY_PROFILE"), signed)
    return out
