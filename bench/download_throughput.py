"""Download speed through Hearth's download manager ÷ curl, same file, same local server.

A file of --size-mb (default 256) is served by the stand-in hub (tests/hub_server.py, run in its own
process so the server never competes with the manager for the GIL) on 127.0.0.1. Each round fetches
it once with `curl -o` and once with a fresh DownloadManager (enqueue -> metadata, download, sha256
verification, move into the models folder); the two alternate so that background load hits both.
After a warm-up of each (imports, page cache), the ratio is median(curl time) / median(manager time).

Then the cost of an interruption at 50 %: with an in-process server that counts the bytes it sends,
(a) the connection is dropped at exactly 50 % and the manager resumes by itself; (b) the user pauses
at about 50 % and resumes. Bytes re-downloaded = bytes sent - file size.

Last, the window's side: the same file downloaded through the GUI path (LibraryController, the
Library and Downloads pages receiving every progress update, offscreen Qt) while a 5 ms heartbeat
timer records the longest gap in the GUI event loop (`gui_max_stall_ms`, target <= 50).

    python bench/download_throughput.py [--size-mb 256] [--rounds 7]

Last line: download_throughput_ratio X (target >= 0.9).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core import catalog  # noqa: E402
from app.core.downloads import DownloadManager, JobState  # noqa: E402
from tests.hub_server import Fault, HubServer, make_gguf_like  # noqa: E402

REPO = "local/models"  # what `python tests/hub_server.py DIR` serves
NAME = "bench.gguf"


def write_file(path: Path, size: int) -> None:
    block = make_gguf_like(1 << 20, seed=11)
    with path.open("wb") as f:
        left = size
        while left:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def manager_download(model_id: str, repo: str = REPO, pause_at: float | None = None) -> float:
    """Seconds from enqueue to an installed, verified model; then the model is deleted again."""
    m = DownloadManager(token_provider=lambda: None, backoff=0.05, disk_margin=0)
    try:
        t0 = time.perf_counter()
        job = m.enqueue_files(model_id, model_id, repo, [NAME])
        m.start()
        if pause_at is not None:
            while (m.job(job.id).percent or 0) < pause_at * 100:
                time.sleep(0.001)
            m.pause(job.id)
            m.wait(job.id, 120)
            m.resume(job.id)
        done = m.wait(job.id, 600)
        elapsed = time.perf_counter() - t0
        if done.state != JobState.DONE:
            raise SystemExit(f"download failed: {done.message}")
        for j in m.jobs():
            m.remove(j.id)
    finally:
        m.close()
    catalog.delete_model(model_id)
    return elapsed


def curl_download(url: str, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "--silent", "--fail", "--output", str(out), url], check=True)
    elapsed = time.perf_counter() - t0
    out.unlink()
    return elapsed


def interruption_costs(source: Path, size: int) -> list[tuple[str, int]]:
    results = []
    with HubServer() as hub:
        hub.add_repo("bench/interrupt", {NAME: source})
        os.environ["HF_ENDPOINT"] = hub.url
        hub.inject("bench/interrupt", NAME, Fault("drop", at=size // 2))
        manager_download("interrupt-drop", "bench/interrupt")
        results.append(("connection dropped at 50 %", hub.body_bytes(NAME) - size))
        hub.log.clear()
        # Slow the second half of the file so that the pause lands near 50 %, as a user's would.
        hub.inject("bench/interrupt", NAME, Fault("trickle", at=size // 2, rate=50_000_000))
        manager_download("interrupt-pause", "bench/interrupt", pause_at=0.5)
        results.append(("paused at 50 % and resumed", hub.body_bytes(NAME) - size))
    return results


def gui_stall_ms(model_id: str) -> tuple[float, float]:
    """(longest GUI event-loop gap in ms, seconds) for one download started from the Library page."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.catalog import Catalog, CatalogEntry, CatalogFile, Sampling
    from app.gui.library.controller import LibraryController
    from app.gui.library.downloads_page import DownloadsPage
    from app.gui.library.view import LibraryPage
    from app.gui.theme import ThemeManager

    app = QApplication.instance() or QApplication([])
    ThemeManager(app, forced="light")
    controller = LibraryController(manager_factory=lambda: DownloadManager(token_provider=lambda: None, disk_margin=0))
    controller._catalog = Catalog(
        [
            CatalogEntry(
                id=model_id,
                name="bench",
                repo=REPO,
                revision="main",
                files=(CatalogFile(NAME, None, None),),
                quantization="",
                context_length=0,
                params_total=0,
                params_active=0,
                license="",
                capabilities=frozenset(),
                description="",
                sampling=Sampling(),
            )
        ]
    )
    library, downloads = LibraryPage(controller), DownloadsPage(controller)
    library.resize(1000, 800)
    downloads.resize(1000, 800)
    library.show()
    downloads.show()
    loop = QEventLoop()
    clock = QElapsedTimer()
    gaps = [0.0]
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: gaps.append(clock.restart() - 5.0))
    controller.jobChanged.connect(lambda job: job is not None and job.finished and loop.quit())
    QTimer.singleShot(600_000, loop.quit)  # a safety net
    t0 = time.perf_counter()
    clock.start()
    heartbeat.start()
    controller.download(model_id)
    loop.exec()
    heartbeat.stop()
    elapsed = time.perf_counter() - t0
    job = controller.job_for_model(model_id)
    controller.close()
    library.close()
    downloads.close()
    if job is None or job.state != JobState.DONE:
        raise SystemExit(f"GUI download failed: {job.message if job else 'no job'}")
    catalog.delete_model(model_id)
    return max(gaps), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed for the comparison")

    work = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    os.environ["HEARTH_HOME"] = str(work / "home")
    size = args.size_mb * 1024 * 1024
    serve_dir = work / "served"
    serve_dir.mkdir()
    source = serve_dir / NAME
    write_file(source, size)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "hub_server.py"), str(serve_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        endpoint = line.split()[0].partition("=")[2]
        os.environ["HF_ENDPOINT"] = endpoint
        url = f"{endpoint}/{REPO}/resolve/main/{NAME}"
        print(f"file: {size / 1e6:.0f} MB served by {endpoint} (separate process)")

        curl_download(url, work / "curl.bin")  # warm-up: page cache, curl
        manager_download("warmup")  # warm-up: imports, HTTP session
        curl_times, manager_times = [], []
        for i in range(args.rounds):
            c = curl_download(url, work / "curl.bin")
            m = manager_download(f"round{i}")
            curl_times.append(c)
            manager_times.append(m)
            print(f"round {i + 1}: curl {size / c / 1e6:7.1f} MB/s   manager {size / m / 1e6:7.1f} MB/s")
        stall, seconds = gui_stall_ms("gui")
        print(f"gui_max_stall_ms {stall:.1f} (download through the Library page: {size / seconds / 1e6:.1f} MB/s)")
    finally:
        server.terminate()
        server.wait(10)

    for label, extra in interruption_costs(source, size):
        print(f"re-downloaded after {label}: {extra:,} bytes ({100 * extra / size:.2f} % of the file)")
    shutil.rmtree(work, ignore_errors=True)
    ratio = statistics.median(curl_times) / statistics.median(manager_times)
    print(f"download_throughput_ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
