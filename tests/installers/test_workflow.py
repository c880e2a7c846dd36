"""The release workflow, read as GitHub would (it cannot run here): the jobs, the variants, and
that each job builds with the same installers/build.py commands as the README, runs --selftest on
what it built, and uploads the artefacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def _variants(job: dict[str, Any]) -> list[str]:
    matrix = job.get("strategy", {}).get("matrix", {})
    return [m["variant"] for m in matrix.get("include", [])] + list(matrix.get("variant", []))


def test_jobs_cover_every_system_and_the_cuda_variants() -> None:
    jobs = WORKFLOW["jobs"]
    assert {"linux", "windows", "macos", "publish"} <= set(jobs)
    assert _variants(jobs["linux"]) == ["cpu", "vulkan", "cuda"]
    assert _variants(jobs["windows"]) == ["vulkan", "cuda"]
    assert jobs["macos"]["runs-on"].startswith("macos-14")  # Apple Silicon
    assert "tags" in WORKFLOW[True]["push"]  # PyYAML reads the key `on` as True


def test_every_build_job_builds_selftests_and_uploads() -> None:
    for name in ("linux", "windows", "macos"):
        job = WORKFLOW["jobs"][name]
        runs = _runs(job)
        assert "python installers/build.py --variant" in runs, name
        assert "--selftest" in runs and "--model" in runs, name
        assert any(str(step.get("uses", "")).startswith("actions/upload-artifact@") for step in job["steps"]), name
    linux = _runs(WORKFLOW["jobs"]["linux"])
    assert "bash installers/linux/vulkan_sdk.sh" in linux and "--variant vulkan" in linux
    assert "apt-get install -y -qq ./dist/hearth_" in linux and "AppImage --selftest" in linux
    assert "bash .ci/run" in linux  # the whole test suite, with the Vulkan build


def test_scripts_the_workflow_calls_exist() -> None:
    for path in ("installers/build.py", "installers/build_llama.py", "installers/linux/vulkan_sdk.sh", ".ci/run"):
        assert (ROOT / path).is_file(), path
    from installers import build, build_llama

    assert set(build.VARIANT_BUILDS) == {"cpu", "vulkan", "cuda", "metal"}
    assert set(build_llama.VARIANT_ARGS) == {"cpu", "vulkan", "cuda", "metal"}
    assert "-DGGML_METAL_EMBED_LIBRARY=on" in build_llama.VARIANT_ARGS["metal"]
    assert "-DGGML_NATIVE=OFF" in build_llama.cmake_args("vulkan", None)  # bundles run on other CPUs


def test_a_relative_vulkan_sdk_reaches_cmake_as_an_absolute_path(tmp_path: Path, monkeypatch: Any) -> None:
    """pip runs CMake from a temporary folder: a prefix relative to the caller finds nothing there."""
    from installers import build_llama

    monkeypatch.chdir(tmp_path)
    args = build_llama.cmake_args("vulkan", Path("build/vulkan-sdk"))
    usr = tmp_path.resolve() / "build" / "vulkan-sdk" / "usr"
    assert f"-DCMAKE_PREFIX_PATH={usr}" in args.split()
    assert f"-DVulkan_INCLUDE_DIR={usr / 'include'}" in args.split()
