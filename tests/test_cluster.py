"""``tofu tokenize --scheduler`` on a real Dask cluster: a scheduler and a worker as separate processes."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main

SMALL = ["--no-images", "--text-codebook-size", "32", "--structure-codebook-size", "8", "--quiet"]
TABLES = ("entities", "relations", "triples", "entity_tokens", "relation_tokens")


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@contextlib.contextmanager
def _dask_process(module: str, *args: str, cwd: Path):
    """``python -m distributed.cli.<module> ARGS`` running in ``cwd`` until the block ends."""
    process = subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}", *args], cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scheduler_address(scheduler_file: Path, process: subprocess.Popen) -> str:
    """The address a scheduler writes to its --scheduler-file once it listens."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the Dask scheduler exited"
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            return json.loads(scheduler_file.read_text())["address"]
        time.sleep(0.2)
    raise AssertionError("the Dask scheduler wrote no address")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_scheduler_and_a_worker_elsewhere_tokenize_what_a_serial_run_does(tmp_path, example_graph, monkeypatch):
    """Relative paths reach a worker started in another folder; a cluster without workers and an
    unreachable or malformed address each fail with one Error line, after --scheduler-timeout."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    shutil.copytree(example_graph, here / "graphs" / "example")
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    serial = _run("tokenize", "graphs/example", "--out", "serial", *SMALL)
    assert serial.exit_code == 0, serial.output
    books = ["--codebooks", "serial/codebooks"]
    scheduler_file = tmp_path / "scheduler.json"
    with _dask_process("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                       "--scheduler-file", str(scheduler_file), cwd=elsewhere) as scheduler:
        address = _scheduler_address(scheduler_file, scheduler)
        lonely = _run("tokenize", "graphs/example", "--out", "lonely", *books, "--scheduler", address,
                      "--scheduler-timeout", "2", *SMALL)
        assert lonely.exit_code == 1, lonely.output
        assert f"Error: the Dask cluster ({address}) has had no workers for 2 s" in lonely.output
        assert "Traceback" not in lonely.output
        with _dask_process("dask_worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                           cwd=elsewhere):
            remote = _run("tokenize", "graphs/example", "--out", "remote", *books, "--scheduler", address, *SMALL)
        assert remote.exit_code == 0, remote.output
        assert f"dask:{address}" in remote.output
    for table in TABLES:
        assert (here / "remote" / "example" / f"{table}.parquet").read_bytes() == \
            (here / "serial" / "example" / f"{table}.parquet").read_bytes(), table
    assert not (elsewhere / "remote").exists()
    for address, reason in ((f"tcp://127.0.0.1:{_closed_port()}", "Timed out"), ("nowhere", "missing port")):
        result = _run("tokenize", "graphs/example", "--out", "unreachable", *books, "--scheduler", address,
                      "--scheduler-timeout", "2", *SMALL)
        assert result.exit_code == 1, result.output
        assert f"Error: cannot reach the Dask scheduler at {address!r}" in result.output and reason in result.output
        assert "Traceback" not in result.output
