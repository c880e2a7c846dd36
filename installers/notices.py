"""Licence files of every Python distribution in a frozen bundle, for its third-party notices.

`write_notices(out_dir)` follows Hearth's run-time dependencies (pyproject.toml) through the
installed distributions, copies their licence files into
out_dir/licenses/<dist>/ and appends a list of them, with licence names, to out_dir's
THIRD_PARTY_NOTICES.md (the app's own notices file comes first)."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LICENSE_HINTS = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


def _requirement_names(requires: list[str] | None) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for line in requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def bundled_distributions(roots: list[str] | None = None) -> list[metadata.Distribution]:
    """Hearth's run-time dependencies and theirs (what PyInstaller follows from the app's imports),
    as installed in this Python."""
    if roots is None:
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        roots = _requirement_names(project["dependencies"])
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        todo.extend(_requirement_names(dist.requires))
    return [found[k] for k in sorted(found)]


def licence_name(dist: metadata.Distribution) -> str:
    meta: Any = dist.metadata  # an email.message.Message underneath: .get() exists
    expr = meta.get("License-Expression")
    if expr:
        return str(expr)
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    text = (meta.get("License") or "").strip().splitlines()
    return text[0][:80] if text else "see its licence files"


def licence_files(dist: metadata.Distribution) -> list[Path]:
    out = []
    for f in dist.files or []:
        name = Path(str(f)).name.upper()
        if any(name.startswith(h) for h in LICENSE_HINTS) or "/licenses/" in str(f).lower():
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                out.append(path)
    return out


def write_notices(out_dir: Path) -> Path:
    lic_dir = out_dir / "licenses"
    shutil.copytree(ROOT / "app" / "resources" / "licenses", lic_dir, dirs_exist_ok=True)
    shutil.copy2(ROOT / "LICENSE", out_dir / "LICENSE")
    lines = [
        (ROOT / "app" / "resources" / "THIRD_PARTY_NOTICES.md").read_text(encoding="utf-8").rstrip(),
        "",
        "## Every bundled Python distribution",
        "",
    ]
    for dist in bundled_distributions():
        name, version = dist.metadata["Name"], dist.version
        files = licence_files(dist)
        target = lic_dir / name
        for f in files:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target / f.name)
        where = f" — `licenses/{name}/`" if files else ""
        lines.append(f"- {name} {version}: {licence_name(dist)}{where}")
    notices = out_dir / "THIRD_PARTY_NOTICES.md"
    notices.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return notices
