"""Which build of llama.cpp the engine's child process loads (CPU, Vulkan, CUDA, Metal), and why.

llama-cpp-python cannot load ggml backends at run time (a GGML_BACKEND_DL build fails with "no
backends are loaded"), but it loads its libraries from LLAMA_CPP_LIB_PATH when that is set. So a
bundle carries one folder of shared libraries per build (builds/cpu, builds/vulkan, ...) and the
engine's child process is started with LLAMA_CPP_LIB_PATH pointing at one of them.

`choose_build()` tries the bundled builds best first (CUDA, Vulkan, Metal, CPU). Each is tested
in a short child process (app.core.llama_probe) with a timeout: a build whose libraries do not
load, whose driver is missing or aborts, or that finds no GPU is skipped, and the reason says so.
Results are cached on disk, keyed by the build's files, the GPU drivers' files and the variables
that select devices, so a normal start costs a few file stats. This module never imports
llama_cpp, nor Qt.

Where builds come from: the folder named by HEARTH_LLAMA_BUILDS (development and tests), else a
`builds` folder next to the frozen app. Without either, the llama_cpp package's own libraries are
the only build (lib_path None): "cpu", or "metal" on Apple Silicon where pip builds Metal.

Software Vulkan devices (Mesa's lavapipe) are CPU-type devices that llama.cpp skips unless
GGML_VK_VISIBLE_DEVICES selects them; they are slower than the CPU build, so automatic choice
leaves them alone, and forcing Vulkan selects device 0 when no hardware device is found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.hardware import GIB, GpuInfo

log = logging.getLogger(__name__)

BUILDS_ENV = "HEARTH_LLAMA_BUILDS"
LIB_PATH_ENV = "LLAMA_CPP_LIB_PATH"
VK_DEVICES_ENV = "GGML_VK_VISIBLE_DEVICES"
ORDER = ("cuda", "vulkan", "metal", "cpu")
LABELS = {"cpu": "CPU", "vulkan": "Vulkan", "cuda": "CUDA", "metal": "Metal"}
GPU_KINDS = {"cuda": "NVIDIA", "vulkan": "Vulkan", "metal": "Apple"}
PROBE_TIMEOUT_S = 45.0
PROBE_MODULE = "app.core.llama_probe"
CHILD_FLAG = "--hearth-run-module"  # a frozen app runs a module of its own with this (see python_command)
PREFERENCE_FILE = "engine-build.txt"  # in paths.config_dir(): the Settings choice, absent = automatic
CACHE_FILE = "llama-builds.json"  # in paths.cache_dir()
CACHE_VERSION = 1
# Variables that change which devices a build sees, or which driver it loads.
DEVICE_ENV = (
    VK_DEVICES_ENV,
    "CUDA_VISIBLE_DEVICES",
    "VK_ICD_FILENAMES",
    "VK_DRIVER_FILES",
    "VK_ADD_DRIVER_FILES",
    "LD_LIBRARY_PATH",
)


@dataclass(frozen=True)
class LlamaBuild:
    name: str  # "cpu" | "vulkan" | "cuda" | "metal"
    lib_path: Path | None  # folder holding libllama + ggml libs; None = the llama_cpp package's own

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


GpuDevice = GpuInfo  # the devices a build reports are hardware.GpuInfo records


@dataclass(frozen=True)
class BuildChoice:
    build: LlamaBuild
    devices: tuple[GpuInfo, ...]  # GPU devices this build reports (empty for cpu)
    reason: str  # one sentence: why this build
    tried: tuple[str, ...]  # sentences for builds that were tried and failed
    env: tuple[tuple[str, str], ...] = ()  # extra variables the engine child needs (lavapipe)
    version: str = ""  # llama-cpp-python's version, as the build's probe reported it
    system_info: str = ""  # llama_print_system_info() of the build
    forced: str | None = None  # the Settings choice this answers, None for automatic

    @property
    def summary(self) -> str:
        """Short form for a status line: "Vulkan · llvmpipe (LLVM 15.0.6, 256 bits)"."""
        if not self.devices:
            return "CPU"
        return f"{self.build.label} · {self.devices[0].name}"


@dataclass(frozen=True)
class _Probe:
    ok: bool
    devices: tuple[GpuInfo, ...] = ()
    error: str = ""
    version: str = ""
    system_info: str = ""
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


# ---- where builds are ---------------------------------------------------------------------------


def builds_root() -> Path | None:
    """HEARTH_LLAMA_BUILDS, else the `builds` folder of a frozen app, else None."""
    value = os.environ.get(BUILDS_ENV, "").strip()
    if value:
        return Path(value).expanduser().absolute()
    if getattr(sys, "frozen", False):
        exe = Path(sys.executable).resolve().parent
        bases = [Path(getattr(sys, "_MEIPASS", exe)), exe, exe.parent / "Resources", exe.parent / "Frameworks"]
        for base in bases:
            if (base / "builds").is_dir():
                return base / "builds"
    return None


def _has_libllama(folder: Path) -> bool:
    return any((folder / n).is_file() for n in ("libllama.so", "libllama.dylib", "llama.dll", "libllama.dll"))


def _package_build_name() -> str:
    return "metal" if sys.platform == "darwin" and platform.machine().lower() in ("arm64", "aarch64") else "cpu"


def available_builds() -> list[LlamaBuild]:
    """The builds this installation carries, best first (cuda, vulkan, metal, cpu)."""
    root = builds_root()
    found: list[LlamaBuild] = []
    if root is not None:
        found = [LlamaBuild(n, root / n) for n in ORDER if _has_libllama(root / n)]
    if not any(b.name == "cpu" for b in found):
        package = LlamaBuild(_package_build_name(), None)
        if not any(b.name == package.name for b in found):
            found.append(package)
    return found


def _package_lib_dir() -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec("llama_cpp")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "lib"


def build_lib_dir(build: LlamaBuild) -> Path | None:
    return build.lib_path if build.lib_path is not None else _package_lib_dir()


# ---- the Settings choice ------------------------------------------------------------------------


def preferred_build() -> str | None:
    """The engine chosen in Settings ("cpu", "vulkan", ...), or None for automatic."""
    try:
        value = (paths.config_dir(create=False) / PREFERENCE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return value if value in LABELS else None


def set_preferred_build(name: str | None) -> None:
    """Save the Settings choice (None: automatic). Raises OSError when the config folder is not writable."""
    target = paths.config_dir() / PREFERENCE_FILE
    if name is None:
        target.unlink(missing_ok=True)
        return
    if name not in LABELS:
        raise ValueError(f"unknown llama.cpp build {name!r}")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(name, encoding="utf-8")
    os.replace(tmp, target)


# ---- child processes ----------------------------------------------------------------------------


def python_command(module: str, *args: str) -> list[str]:
    """The command line that runs `module` as __main__ in a new process of this Python.

    A frozen app has no `python -m`: its own executable runs the module when given CHILD_FLAG
    (app.cli handles it before anything else)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def _point_at(build: LlamaBuild, env: dict[str, str]) -> dict[str, str]:
    """Make `env` load `build`: LLAMA_CPP_LIB_PATH, and on Linux the folder first on LD_LIBRARY_PATH,
    which the dynamic linker searches before a library's RUNPATH (a frozen app puts its own folder,
    which may hold the CPU build's libggml, on LD_LIBRARY_PATH)."""
    lib = build.lib_path
    if lib is None:
        env.pop(LIB_PATH_ENV, None)
        return env
    env[LIB_PATH_ENV] = str(lib)
    if sys.platform.startswith("linux"):
        rest = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != str(lib)]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib), *rest])
    return env


def child_env(choice: BuildChoice, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an engine child that should load `choice`'s build."""
    env = _point_at(choice.build, dict(os.environ if base is None else base))
    env.update(dict(choice.env))
    return env


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _run_probe(build: LlamaBuild, extra_env: Mapping[str, str], timeout_s: float) -> _Probe:
    import tempfile

    env = _point_at(build, dict(os.environ))
    env.update(extra_env)
    env["PYTHONUNBUFFERED"] = "1"
    fd, result_file = tempfile.mkstemp(prefix="hearth-probe-", suffix=".json")
    os.close(fd)
    env["HEARTH_PROBE_RESULT"] = result_file  # llama_probe.RESULT_ENV
    try:
        done = subprocess.run(
            python_command(PROBE_MODULE),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        written = Path(result_file).read_text(encoding="utf-8")
    except subprocess.TimeoutExpired:
        return _Probe(False, error=f"it did not start within {timeout_s:.0f} s")
    except OSError as exc:
        return _Probe(False, error=f"its test process could not start: {exc}")
    finally:
        Path(result_file).unlink(missing_ok=True)
    data: dict[str, Any] = {}
    for line in reversed((written + "\n" + done.stdout).splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            break
    if done.returncode < 0:
        detail = _last_line(done.stderr)
        return _Probe(False, error=f"it crashed ({_signal_name(done.returncode)}{': ' + detail if detail else ''})")
    if not data.get("ok"):
        detail = str(data.get("error") or _last_line(done.stderr) or f"exit code {done.returncode}")
        return _Probe(False, error=_plain(detail)[:300])
    devices = tuple(_device(d) for d in data.get("devices", []))
    return _Probe(
        True,
        devices=devices,
        version=str(data.get("version", "")),
        system_info=str(data.get("system_info", "")),
        env=tuple(sorted(extra_env.items())),
    )


def _plain(detail: str) -> str:
    """The dynamic linker's long message for a missing library, said short: "libvulkan.so.1 is missing"."""
    import re

    m = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", detail)
    return f"{m.group(1)} is missing" if m else detail


def _device(d: Mapping[str, Any]) -> GpuInfo:
    backend = str(d.get("backend", "")) or "unknown"
    return GpuInfo(
        name=str(d.get("name") or d.get("id") or "GPU"),
        backend=backend,
        vram_total=int(d.get("total", 0)),
        vram_free=int(d.get("free", 0)),
        unified_memory=backend == "metal" or d.get("type") == "igpu",
    )


# ---- drivers and the cache ----------------------------------------------------------------------

_ICD_DIRS = (
    "/usr/share/vulkan/icd.d",
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "~/.local/share/vulkan/icd.d",
)


def _file_stamp(path: Path) -> list[Any]:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns]


def _system_dir() -> Path:
    return Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32"


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver (libcuda / nvcuda.dll) is installed; CUDA builds need nothing else."""
    if sys.platform == "win32":
        return (_system_dir() / "nvcuda.dll").exists()
    if sys.platform == "darwin":
        return False
    if Path("/proc/driver/nvidia/version").exists():
        return True
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None


def vulkan_driver_present() -> bool:
    """Whether a Vulkan loader and at least one driver manifest (ICD) are installed."""
    if sys.platform == "win32":
        return (_system_dir() / "vulkan-1.dll").exists()
    if sys.platform == "darwin":
        return False
    if any(os.environ.get(v) for v in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")):
        return True
    return any(Path(d).expanduser().is_dir() and any(Path(d).expanduser().glob("*.json")) for d in _ICD_DIRS)


def _driver_fingerprint() -> list[Any]:
    stamps: list[Any] = [platform.system(), platform.release()]
    if sys.platform == "win32":
        stamps += [_file_stamp(_system_dir() / n) for n in ("nvcuda.dll", "vulkan-1.dll")]
    elif sys.platform == "darwin":
        stamps.append(platform.mac_ver()[0])
    else:
        try:
            stamps.append(Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace"))
        except OSError:
            stamps.append(None)
        for d in _ICD_DIRS:
            folder = Path(d).expanduser()
            if folder.is_dir():
                stamps += [_file_stamp(p) for p in sorted(folder.glob("*.json"))]
    stamps += [[v, os.environ.get(v)] for v in DEVICE_ENV]
    return stamps


def _build_stamp(build: LlamaBuild) -> list[Any]:
    folder = build_lib_dir(build)
    if folder is None or not folder.is_dir():
        return [build.name, None]
    return [build.name, str(folder), [_file_stamp(p) for p in sorted(folder.iterdir()) if p.is_file()]]


def _cache_key(build: LlamaBuild, extra_env: Mapping[str, str]) -> str:
    raw = json.dumps(
        [CACHE_VERSION, sys.executable, _build_stamp(build), sorted(extra_env.items()), _driver_fingerprint()],
        default=str,
    )
    return hashlib.sha256(raw.encode()).hexdigest()


_memory: dict[str, _Probe] = {}
_lock = threading.Lock()


def _cache_path() -> Path:
    return paths.cache_dir(create=False) / CACHE_FILE


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def _write_cache(key: str, probe: _Probe) -> None:
    data = _read_cache() or {"version": CACHE_VERSION}
    entries = data.setdefault("probes", {})
    entries[key] = {
        "ok": probe.ok,
        "error": probe.error,
        "version": probe.version,
        "system_info": probe.system_info,
        "env": [list(kv) for kv in probe.env],
        "devices": [
            {
                "name": d.name,
                "backend": d.backend,
                "total": d.vram_total,
                "free": d.vram_free,
                "type": "igpu" if d.unified_memory and d.backend != "metal" else "gpu",
            }
            for d in probe.devices
        ],
    }
    if len(entries) > 32:  # old drivers and builds: keep the file small
        for old in list(entries)[: len(entries) - 32]:
            del entries[old]
    try:
        path = _cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs the next start a probe
        log.debug("could not save the llama.cpp build probe: %r", exc)


def _from_cache(entry: Mapping[str, Any]) -> _Probe:
    return _Probe(
        bool(entry.get("ok")),
        devices=tuple(_device(d) for d in entry.get("devices", [])),
        error=str(entry.get("error", "")),
        version=str(entry.get("version", "")),
        system_info=str(entry.get("system_info", "")),
        env=tuple((str(k), str(v)) for k, v in entry.get("env", [])),
    )


def probe_build(
    build: LlamaBuild,
    extra_env: Mapping[str, str] | None = None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    refresh: bool = False,
) -> _Probe:
    """Test `build` in a child process (or answer from the cache)."""
    extra = dict(extra_env or {})
    key = _cache_key(build, extra)
    with _lock:
        if not refresh and key in _memory:
            return _memory[key]
    entry = None if refresh else _read_cache().get("probes", {}).get(key)
    result = _from_cache(entry) if entry is not None else _run_probe(build, extra, timeout_s)
    if entry is None:
        _write_cache(key, result)
    with _lock:
        _memory[key] = result
    return result


def clear_cache() -> None:
    """Forget the probes in memory (the disk cache is keyed so that it need not be cleared)."""
    with _lock:
        _memory.clear()


# ---- the choice ---------------------------------------------------------------------------------


def _gb(n: int) -> str:
    return f"{max(1, round(n / GIB))} GB"


def _device_words(devices: tuple[GpuInfo, ...]) -> str:
    best = max(devices, key=lambda d: (d.vram_free, d.vram_total))
    more = len(devices) - 1
    return f"{best.name} ({_gb(best.vram_total)})" + (f" and {more} more GPU{'s' if more > 1 else ''}" if more else "")


def _chosen(build: LlamaBuild, probe: _Probe, tried: list[str], forced: str | None, note: str = "") -> BuildChoice:
    if probe.devices:
        label = LABELS.get(probe.devices[0].backend, build.label)
        reason = f"{label} on {_device_words(probe.devices)}"
    else:
        reason = "CPU"
    if note:
        reason += f": {note}"
    elif forced is not None and forced == build.name:
        reason += " (chosen in Settings)"
    return BuildChoice(
        build=build,
        devices=probe.devices,
        reason=reason + ".",
        tried=tuple(tried),
        env=probe.env,
        version=probe.version,
        system_info=probe.system_info,
        forced=forced,
    )


def _cpu_note(forced: str | None, gpu_builds: list[LlamaBuild], failures: list[tuple[str, str]]) -> str:
    if failures:
        name, why = failures[0]
        return f"the {LABELS[name]} build failed to start ({why})"
    if forced is not None and forced != "cpu":
        if not any(b.name == forced for b in gpu_builds):
            return f"{LABELS[forced]} was chosen in Settings, but this installation has no {LABELS[forced]} build"
        return f"{LABELS[forced]} was chosen in Settings, but it found no GPU"
    if not gpu_builds:
        return "this installation has no GPU build of llama.cpp"
    kinds = [GPU_KINDS[b.name] for b in gpu_builds if b.name in GPU_KINDS]
    return f"no {' or '.join(dict.fromkeys(kinds))} GPU found"


_left_out: set[str] = set()  # builds whose engine process crashed this session (leave_out)
_left_out_lock = threading.Lock()


def leave_out(name: str) -> None:
    """Choose no more `name` in this process: its engine process crashed (a driver's segfault
    while loading, say). The probe said it started, so only the crash itself can tell."""
    if name != "cpu":
        with _left_out_lock:
            _left_out.add(name)


def left_out() -> frozenset[str]:
    with _left_out_lock:
        return frozenset(_left_out)


def forget_left_out() -> None:
    with _left_out_lock:
        _left_out.clear()


def choose_build(
    forced: str | None = None, exclude: frozenset[str] = frozenset(), *, timeout_s: float = PROBE_TIMEOUT_S
) -> BuildChoice:
    """The build the engine should load, with the reason; never raises.

    `forced` (a name from Settings) is tried first; when it is missing or fails, the automatic
    order follows and the reason says what happened. `exclude` names builds to leave out (e.g.
    one whose engine process just crashed). The CPU build is the last resort: when even it fails
    to start, the choice is still the CPU build and `tried` says why.
    """
    if forced is not None and forced not in LABELS:
        forced = None
    exclude = exclude | left_out()
    builds = [b for b in available_builds() if b.name not in exclude]
    tried = [f"{LABELS[n]}: left out after it failed." for n in sorted(exclude & set(LABELS))]
    order = sorted(builds, key=lambda b: b.name != forced) if forced is not None else builds
    if forced is not None and not any(b.name == forced for b in builds):
        tried.append(f"{LABELS[forced]}: this installation has no {LABELS[forced]} build.")
    gpu_builds = [b for b in builds if b.name != "cpu"]
    failures: list[tuple[str, str]] = []
    for build in order:
        if build.name == "cuda" and not nvidia_driver_present():
            tried.append("CUDA: no NVIDIA driver is installed.")
            continue
        if build.name == "vulkan" and not vulkan_driver_present():
            tried.append("Vulkan: no Vulkan driver is installed.")
            continue
        result = probe_build(build, timeout_s=timeout_s)
        if (
            result.ok
            and not result.devices
            and build.name == "vulkan"
            and forced == "vulkan"
            and VK_DEVICES_ENV not in os.environ
        ):
            # Only a software device (lavapipe) or none: llama.cpp skips CPU-type devices unless asked.
            result = probe_build(build, {VK_DEVICES_ENV: "0"}, timeout_s=timeout_s)
        if not result.ok:
            tried.append(f"{build.label}: failed to start ({result.error}).")
            failures.append((build.name, result.error))
            continue
        if forced == "cpu" and (build.name == "cpu" or build.lib_path is None):
            return _chosen(LlamaBuild("cpu", build.lib_path), replace(result, devices=()), tried, forced)
        if result.devices:
            note = "" if forced in (None, build.name) else _cpu_note(forced, gpu_builds, failures)
            return _chosen(build, result, tried, forced, note)
        if build.name == "cpu" or build.lib_path is None:  # the package's own libraries, on the CPU
            cpu = LlamaBuild("cpu", build.lib_path)
            note = "" if forced == "cpu" else _cpu_note(forced, gpu_builds, failures)
            return _chosen(cpu, result, tried, forced, note)
        tried.append(f"{build.label}: started, but found no GPU it can use.")
    note = _cpu_note(forced, gpu_builds, failures) + "; the CPU build failed to start as well"
    cpu = next((b for b in builds if b.name == "cpu"), LlamaBuild("cpu", None))
    return _chosen(cpu, _Probe(False), tried, forced if forced == "cpu" else None, note)


def describe(choice: BuildChoice) -> list[str]:
    """Lines for Settings, About and `hearth probe`: the reason, then what was tried."""
    return [choice.reason, *choice.tried]


def lib_files(build: LlamaBuild) -> Iterable[Path]:
    folder = build_lib_dir(build)
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file())
