"""app.core.llama_builds: which llama.cpp build the engine loads, with real child-process probes.

The builds here are folders under HEARTH_LLAMA_BUILDS. Broken ones are real files that fail the
way broken builds do: a libllama.so that is not an ELF file, one whose constructor aborts (a
crash), one whose constructor hangs (a timeout); they are compiled with the system's C compiler.
The CPU build is the llama_cpp package's own libraries. Faked, and said so at each place: an
absent NVIDIA driver on a machine that has one, and the probe function when a test checks that
a cached answer needs no process at all. The real Vulkan build on lavapipe is tested in
tests/e2e/test_vulkan_build.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core import llama_builds
from app.core.llama_builds import BuildChoice, LlamaBuild, available_builds, child_env, choose_build


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    llama_builds.clear_cache()
    monkeypatch.delenv(llama_builds.BUILDS_ENV, raising=False)
    monkeypatch.delenv(llama_builds.VK_DEVICES_ENV, raising=False)
    monkeypatch.delenv(llama_builds.LIB_PATH_ENV, raising=False)


def _compile_lib(folder: Path, body: str) -> Path:
    """A real shared library named libllama.so whose constructor runs `body` (C)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (CI has one: llama-cpp-python is built from source)"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "boom.c"
    header = "#include <stdlib.h>\n#include <unistd.h>\n"
    src.write_text(f"{header}__attribute__((constructor)) static void init(void) {{ {body} }}\n")
    out = folder / "libllama.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    src.unlink()
    return out


def _builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **libs: str) -> Path:
    """HEARTH_LLAMA_BUILDS with one folder per keyword: 'garbage', 'abort', 'hang' or 'empty'."""
    root = tmp_path / "builds"
    for name, kind in libs.items():
        folder = root / name
        folder.mkdir(parents=True)
        if kind == "garbage":
            (folder / "libllama.so").write_bytes(b"this is not a shared library")
        elif kind == "abort":
            _compile_lib(folder, "abort();")
        elif kind == "hang":
            _compile_lib(folder, "sleep(60);")
    monkeypatch.setenv(llama_builds.BUILDS_ENV, str(root))
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_available_builds_best_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_builds() == [LlamaBuild("cpu", None)]  # no bundle: the package's own libraries
    root = _builds(tmp_path, monkeypatch, vulkan="garbage", cuda="garbage", metal="empty")
    names = [b.name for b in available_builds()]
    assert names == ["cuda", "vulkan", "cpu"]  # metal/ holds no libllama: not a build
    assert available_builds()[0].lib_path == root / "cuda"
    assert available_builds()[-1].lib_path is None


def test_this_machine_without_gpu_builds_runs_the_cpu(tmp_path: Path) -> None:
    choice = choose_build()
    assert choice.build == LlamaBuild("cpu", None) and choice.devices == ()
    assert choice.reason == "CPU: this installation has no GPU build of llama.cpp."
    assert choice.version and "CPU" in choice.system_info  # the probe really loaded llama.cpp


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_a_build_whose_library_does_not_load_falls_back_to_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llama_builds, "vulkan_driver_present", lambda: True)  # so the broken build is tried
    _builds(tmp_path, monkeypatch, vulkan="garbage")
    choice = choose_build()
    assert choice.build.name == "cpu" and choice.devices == ()
    assert choice.reason.startswith("CPU: the Vulkan build failed to start (")
    assert len(choice.tried) == 1 and choice.tried[0].startswith("Vulkan: failed to start (")
    assert "libllama.so" in choice.tried[0] or "ELF" in choice.tried[0] or "OSError" in choice.tried[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_a_crashing_and_a_hanging_build_are_skipped_and_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llama_builds, "vulkan_driver_present", lambda: True)
    monkeypatch.setattr(llama_builds, "nvidia_driver_present", lambda: True)  # fake: lets the cuda folder be tried
    _builds(tmp_path, monkeypatch, cuda="abort", vulkan="hang")
    started = time.monotonic()
    choice = choose_build(timeout_s=3)
    assert time.monotonic() - started < 20
    assert choice.build.name == "cpu"
    assert choice.reason.startswith("CPU: the CUDA build failed to start (it crashed (SIGABRT")
    assert choice.tried[0].startswith("CUDA: failed to start (it crashed (SIGABRT")
    assert choice.tried[1] == "Vulkan: failed to start (it did not start within 3 s)."


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_a_cuda_build_without_the_nvidia_driver_is_not_even_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faked: no NVIDIA driver (true on the build machine; faked so the test means the same on a GPU box)."""
    monkeypatch.setattr(llama_builds, "nvidia_driver_present", lambda: False)
    monkeypatch.setattr(llama_builds, "vulkan_driver_present", lambda: False)
    _builds(tmp_path, monkeypatch, cuda="abort", vulkan="abort")  # would crash if it were started
    choice = choose_build()
    assert choice.build.name == "cpu"
    assert choice.reason == "CPU: no NVIDIA or Vulkan GPU found."
    assert choice.tried == ("CUDA: no NVIDIA driver is installed.", "Vulkan: no Vulkan driver is installed.")


def test_forced_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = choose_build("cpu")
    assert cpu.build.name == "cpu" and cpu.reason == "CPU (chosen in Settings)." and cpu.forced == "cpu"
    vk = choose_build("vulkan")
    assert vk.build.name == "cpu"
    assert vk.reason == "CPU: Vulkan was chosen in Settings, but this installation has no Vulkan build."
    assert vk.tried == ("Vulkan: this installation has no Vulkan build.",)
    assert choose_build("no-such-build").reason == "CPU: this installation has no GPU build of llama.cpp."


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_exclude_leaves_a_build_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_builds, "vulkan_driver_present", lambda: True)
    _builds(tmp_path, monkeypatch, vulkan="abort")
    choice = choose_build(exclude=frozenset({"vulkan"}))
    assert choice.tried == ("Vulkan: left out after it failed.",)
    assert choice.reason == "CPU: this installation has no GPU build of llama.cpp."


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds compiled as ELF shared libraries")
def test_probes_are_cached_on_disk_until_the_build_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_builds, "vulkan_driver_present", lambda: True)
    root = _builds(tmp_path, monkeypatch, vulkan="garbage")
    first = choose_build()
    runs: list[str] = []
    real = llama_builds._run_probe

    def counting(build: LlamaBuild, extra: object, timeout_s: float) -> object:
        runs.append(build.name)
        return real(build, extra, timeout_s)  # type: ignore[arg-type]

    monkeypatch.setattr(llama_builds, "_run_probe", counting)  # counts child processes, runs them for real
    llama_builds.clear_cache()  # a new process: only the disk cache is left
    started = time.perf_counter()
    assert choose_build() == first and runs == []
    assert time.perf_counter() - started < 0.2
    (root / "vulkan" / "libllama.so").write_bytes(b"a different broken library")  # an update of the build
    choose_build()
    assert runs == ["vulkan"]
    monkeypatch.setenv(llama_builds.VK_DEVICES_ENV, "0")  # another device selection: another answer
    choose_build()
    assert runs == ["vulkan", "vulkan", "cpu"]


def test_child_env_points_the_engine_at_the_build(tmp_path: Path) -> None:
    build = LlamaBuild("vulkan", tmp_path / "vulkan")
    choice = BuildChoice(build, (), "Vulkan.", (), env=((llama_builds.VK_DEVICES_ENV, "0"),))
    env = child_env(choice, {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/hearth/_internal"})
    assert env["LLAMA_CPP_LIB_PATH"] == str(tmp_path / "vulkan")
    assert env[llama_builds.VK_DEVICES_ENV] == "0" and env["PATH"] == "/usr/bin"
    if sys.platform.startswith("linux"):  # searched before the libraries' RUNPATH: the build's libggml wins
        assert env["LD_LIBRARY_PATH"] == f"{tmp_path / 'vulkan'}{os.pathsep}/opt/hearth/_internal"
    cpu = child_env(BuildChoice(LlamaBuild("cpu", None), (), "CPU.", ()), {"LLAMA_CPP_LIB_PATH": "/old"})
    assert "LLAMA_CPP_LIB_PATH" not in cpu


def test_preference_round_trip() -> None:
    assert llama_builds.preferred_build() is None
    llama_builds.set_preferred_build("vulkan")
    assert llama_builds.preferred_build() == "vulkan"
    (llama_builds.paths.config_dir() / llama_builds.PREFERENCE_FILE).write_text("warp-drive")
    assert llama_builds.preferred_build() is None  # an unknown value means automatic
    llama_builds.set_preferred_build(None)
    assert llama_builds.preferred_build() is None
    with pytest.raises(ValueError):
        llama_builds.set_preferred_build("warp-drive")


def test_a_frozen_app_runs_its_child_modules_through_its_own_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert llama_builds.python_command("app.core.llama_probe") == [sys.executable, "-m", "app.core.llama_probe"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert llama_builds.python_command("app", "--x") == [sys.executable, llama_builds.CHILD_FLAG, "app", "--x"]
    monkeypatch.undo()
    # ...and `hearth --hearth-run-module MODULE` is what runs it (here through the same entry point).
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())",
         llama_builds.CHILD_FLAG, "app.core.llama_probe"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"ok": true' in result.stdout.splitlines()[-1]
