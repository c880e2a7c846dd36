"""Build one variant of llama.cpp's shared libraries for a Hearth bundle.

    python installers/build_llama.py --variant vulkan --out builds/vulkan [--wheel-dir DIR] [--sdk PREFIX]

llama-cpp-python is built from its sdist as a wheel with the variant's CMAKE_ARGS (into
--wheel-dir, never into the running environment), and the wheel's llama_cpp/lib/* (libllama,
libggml*, ...) is extracted into --out. The bundle carries one such folder per variant
(builds/cpu, builds/vulkan, builds/cuda, builds/metal); app.core.llama_builds points
LLAMA_CPP_LIB_PATH at one of them in the engine's child process.

Variants: cpu (the sdist's default), vulkan (--sdk: a prefix holding Vulkan >= 1.4 headers, see
installers/linux/vulkan_sdk.sh; not needed where the system's headers are new enough), cuda
(needs nvcc on PATH), metal (macOS, shaders embedded). Exits non-zero with a sentence on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from installers.bundle_plan import keep_llama_lib  # noqa: E402

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
COMMON = ["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF"]
# Bundles run on other people's CPUs: no -march=native (GGML_NATIVE=OFF builds the AVX2/FMA/F16C
# baseline on x86-64). --native keeps this machine's instruction set (local tests only).
PORTABLE = ["-DGGML_NATIVE=OFF"]
VARIANT_ARGS: dict[str, list[str]] = {
    "cpu": [],
    "vulkan": ["-DGGML_VULKAN=on"],
    # Never ship libcuda.so.1: it comes with the driver. The CUDA runtime and cuBLAS are copied
    # next to libggml-cuda by the bundle step (installers/bundle.py) from the toolkit.
    "cuda": ["-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=61;70;75;80;86;89;90"],
    "metal": ["-DGGML_METAL=on", "-DGGML_METAL_EMBED_LIBRARY=on"],
}
LIB_SUFFIXES = (".so", ".dylib", ".dll", ".metal")


def cmake_args(variant: str, sdk: Path | None, native: bool = False) -> str:
    args = [*COMMON, *([] if native or variant == "metal" else PORTABLE), *VARIANT_ARGS[variant]]
    if variant == "vulkan" and sdk is not None:
        # Absolute: pip runs CMake from a temporary folder, where a relative prefix finds nothing
        # (CI's `--sdk build/vulkan-sdk` failed on SPIRV-Headers that way).
        usr = sdk.resolve() / "usr"
        args += [f"-DVulkan_INCLUDE_DIR={usr / 'include'}", f"-DCMAKE_PREFIX_PATH={usr}"]
    return " ".join(args)


def build_wheel(variant: str, wheel_dir: Path, sdk: Path | None, jobs: int, native: bool = False) -> Path:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for old in wheel_dir.glob("llama_cpp_python-*.whl"):
        old.unlink()
    env = dict(
        os.environ, CMAKE_ARGS=cmake_args(variant, sdk, native), CMAKE_BUILD_PARALLEL_LEVEL=str(jobs), FORCE_CMAKE="1"
    )
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        LLAMA_CPP_PYTHON,
        "--no-deps",
        "--no-binary",
        "llama-cpp-python",
        "--no-cache-dir",
        "-w",
        str(wheel_dir),
    ]
    print(f"build_llama: {variant}: CMAKE_ARGS={env['CMAKE_ARGS']}", flush=True)
    subprocess.run(cmd, env=env, check=True)
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    if not wheels:
        raise SystemExit(f"build_llama: pip built no wheel in {wheel_dir}")
    return wheels[-1]


def extract_libs(wheel: Path, out: Path) -> list[Path]:
    """llama_cpp/lib/* of the wheel into out/ (replacing what was there)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not name.startswith("llama_cpp/lib/") or name.endswith("/"):
                continue
            if not keep_llama_lib(Path(name).name):
                continue
            target = out / Path(name).name
            with zf.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            written.append(target)
    if not any(p.name.startswith(("libllama", "llama")) for p in written):
        raise SystemExit(f"build_llama: {wheel.name} holds no libllama under llama_cpp/lib")
    return written


CUDA_RUNTIME = ("libcudart", "libcublas", "libcublasLt", "cudart64", "cublas64", "cublasLt64")


def bundle_cuda_runtime(out: Path) -> list[Path]:
    """Copy the CUDA runtime and cuBLAS that libggml-cuda needs next to it (redistributable under the
    CUDA EULA). Never libcuda / nvcuda.dll: that is the driver, which comes with the GPU's driver."""
    copied: list[Path] = []
    if sys.platform == "win32":
        cuda_bin = Path(os.environ.get("CUDA_PATH", "")) / "bin"
        sources = [p for p in cuda_bin.glob("*.dll") if p.name.startswith(CUDA_RUNTIME)]
    else:
        libs = list(out.glob("libggml-cuda.so*"))
        if not libs:
            raise SystemExit(f"build_llama: no libggml-cuda in {out}")
        ldd = subprocess.run(["ldd", str(libs[0])], capture_output=True, text=True, check=True).stdout
        sources = []
        for line in ldd.splitlines():
            name, _, where = line.strip().partition("=>")
            if name.strip().startswith(CUDA_RUNTIME) and where.strip().startswith("/"):
                sources.append(Path(where.strip().split(" (")[0]))
    for src in sources:
        target = out / src.name
        shutil.copy2(src.resolve(), target)
        copied.append(target)
    if not copied:
        raise SystemExit("build_llama: the CUDA runtime libraries were not found (is the CUDA toolkit installed?)")
    return copied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=sorted(VARIANT_ARGS), required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for the variant's shared libraries")
    p.add_argument("--wheel-dir", type=Path, help="where pip puts the wheel (default: a temporary folder)")
    p.add_argument("--wheel", type=Path, help="extract from this already-built wheel instead of building")
    p.add_argument("--sdk", type=Path, help="vulkan: the prefix made by installers/linux/vulkan_sdk.sh")
    p.add_argument("--native", action="store_true", help="optimise for this machine's CPU (local tests only)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")))
    args = p.parse_args(argv)
    if args.wheel is not None:
        wheel = args.wheel
    else:
        wheel_dir = args.wheel_dir or Path(tempfile.mkdtemp(prefix=f"hearth-{args.variant}-wheel-"))
        wheel = build_wheel(args.variant, wheel_dir, args.sdk, args.jobs, args.native)
    libs = extract_libs(wheel, args.out)
    if args.variant == "cuda":
        libs += bundle_cuda_runtime(args.out)
    size = sum(p.stat().st_size for p in libs)
    print(f"build_llama: {args.variant}: {len(libs)} files, {size / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
