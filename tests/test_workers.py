"""``axis serve --workers 2`` on PostgreSQL, with simulated agencies: nothing lost, nothing
twice, one log chain; SIGKILL one worker mid-run and still nothing is lost. SQLite refuses
several workers with a clear message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from axis.host import datadir
from axis.host.datadir import DataDir
from tests.helpers import BIN, cli, free_port, hub_stats, init_data, postgres_schema, serving

pytestmark = pytest.mark.process  # each starts processes: hubs, commands, workers


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def test_sqlite_refuses_several_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data(data, free_port())
    done = cli("axis", "serve", "--data", data, "--workers", "2", check=False)
    assert done.returncode != 0
    assert "several workers need a shared PostgreSQL database" in done.stderr


async def test_two_workers_on_postgres_lose_nothing_when_one_is_killed(tmp_path: Path) -> None:
    async with postgres_schema() as url:
        data = tmp_path / "data"
        port, admin_port = free_port(), free_port()
        init_data(data, port)
        datadir.set_setting(DataDir(data), "database", url)
        # The national axis's face too, in every worker: half the agencies use it.
        datadir.set_setting(DataDir(data), "enabled", True)
        datadir.set_setting(DataDir(data), "vdxp_port", free_port())
        token = (data / "admin.token").read_text().strip()
        documents = 160
        command = [
            str(BIN / "axis"), "simulate", "--hub", f"https://localhost:{port}",
            "--data", str(data), "--documents", str(documents), "--agencies", "14",
            "--seed", "8", "--json", "--report", str(tmp_path / "report"), "--vdxp-share", "0.5",
        ]  # fmt: skip
        with serving(data, port, admin_port, "--workers", "2") as parent:
            deadline = time.monotonic() + 30
            while len(_children(parent.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            workers = _children(parent.pid)
            assert len(workers) == 2, workers
            errors = (tmp_path / "simulate.err").open("wb")  # a file: a pipe could fill up
            run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
            try:
                deadline = time.monotonic() + 90
                while hub_stats(admin_port, token)["documents"] < 50:
                    assert time.monotonic() < deadline, "the run did not get going"
                    time.sleep(0.2)
                os.kill(workers[0], signal.SIGKILL)  # mid-run
                out, _ = run.communicate(timeout=240)
                assert out, (tmp_path / "simulate.err").read_text(errors="replace")[-3000:]
            finally:
                if run.poll() is None:
                    run.kill()
                errors.close()
            # The parent started another in its place.
            assert len(_children(parent.pid)) == 2
            stats = hub_stats(admin_port, token)
        summary = json.loads(out)
        assert summary["documents_sent"] == summary["documents_accepted"] == documents
        assert summary["lost"] == 0 and summary["duplicates"] == 0
        assert summary["acknowledged"] == summary["deliveries"]
        assert summary["faces"]["vdxp"] >= 3, summary["faces"]
        assert sum(stats["by_system"].values()) > 0  # both faces carried the run
        assert stats["documents"] == documents + summary["updates"]
        assert stats["by_state"] == {"acknowledged": summary["deliveries"]}
        log = (data / "serve.log").read_text()
        assert "exited with status -9; starting another" in log
        cli("axis", "log", "verify", "--data", data)


def test_workers_that_cannot_start_stop_the_hub_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data(data, free_port())
    done = cli("axis", "serve", "--data", data, "--admin-port", str(free_port()),
               "--db", "postgresql://postgres@127.0.0.1:1/nowhere", "--workers", "2",
               check=False)  # fmt: skip
    assert done.returncode == 1
    assert "times in a row" in done.stderr and "cannot open the database" in done.stderr
