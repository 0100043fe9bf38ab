"""``axis bench``: the floor does the real work (its signatures verify with the hub's own
verifier, tampering is caught), and the command runs end to end. Timings are never asserted:
this machine is shared and noisy; the benchmark's numbers are for people to watch."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from axis.core import formats, pki
from axis.core.signing import VerificationPolicy, Verifier, signing_cert_of
from nodes.sim import bench
from nodes.sim.contract import ContractCosts
from tests.helpers import BIN, cli, postgres_schema

G22, H41 = "000.00.00.G22", "000.00.00.H41"


def _signed() -> tuple[bytes, ec.EllipticCurvePrivateKey, pki.TrustStore]:
    key = pki.new_key("ec")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca_key, ca = pki.create_ca("Bench CA")
    _, cert = pki.issue_agency_cert(ca_key, ca, G22, "Văn phòng Chính phủ", key=key)
    edoc = bench._edoc(7, G22, H41, b"%PDF-1.4 " * 2000, date(2020, 1, 6))
    body = bench.floor_sign(formats.build_edoc(edoc), key, cert.public_bytes(Encoding.DER))
    return body, key, pki.TrustStore((ca,))


def test_the_floors_signature_is_a_real_one() -> None:
    """What the floor signs, signxml verifies under the hub's policy: the floor skips no
    work that a real signature needs."""
    body, key, trust = _signed()
    cert = signing_cert_of(formats.load_xml(body))
    assert cert is not None
    signed_tree = Verifier(VerificationPolicy(), trust).verify(body, cert)
    parsed = formats.parse_package(signed_tree)
    assert parsed.sender.organ_id == G22
    bench.floor_verify(body, key.public_key())


def test_the_floors_verifier_catches_tampering() -> None:
    body, key, _ = _signed()
    with pytest.raises(ValueError, match="digest"):
        tampered = body.replace("Đo hiệu năng 7".encode(), "Đo hiệu năng 8".encode(), 1)
        assert tampered != body
        bench.floor_verify(tampered, key.public_key())
    other = pki.new_key("ec")
    assert isinstance(other, ec.EllipticCurvePrivateKey)
    with pytest.raises(InvalidSignature):
        bench.floor_verify(body, other.public_key())


def test_the_floor_counts_every_stage() -> None:
    seen: dict[str, int] = {}
    measured = bench.floor(30, progress=lambda stage, done, total: seen.__setitem__(stage, done))
    assert seen == {"sign": 30, "verify": 30, "store": 30}
    assert measured.packages == 30 and min(measured.sign_s, measured.verify_s) > 0
    assert measured.per_s == pytest.approx(30 / measured.seconds)


@pytest.mark.process  # axis bench starts a hub
def test_the_command_prints_the_figures_as_json() -> None:
    done = cli("axis", "bench", "--documents", "40", "--json")
    figures = json.loads(done.stdout)
    assert set(figures) == {"floor_per_s", "e2e_per_s", "ratio", "p50_ms", "p99_ms", "peak_rss_mb"}
    assert figures["floor_per_s"] > 0 and figures["e2e_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["e2e_per_s"] / figures["floor_per_s"], rel=0.01, abs=0.001
    )
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert figures["peak_rss_mb"] > 10


@pytest.mark.process  # axis bench starts a hub
async def test_the_hub_runs_as_asked() -> None:
    """The options reach the hub (an option that silently did nothing once made two runs
    of the same hub look like a comparison)."""
    result = await bench.bench(15, verifier="signxml")
    assert result.hub == "signxml, SQLite, 1 worker"
    assert result.lost == 0 and result.e2e_per_s > 0
    async with postgres_schema() as url:
        result = await bench.bench(15, db=url, workers=2)
    assert result.hub == "xmlsec, PostgreSQL, 2 workers"
    assert result.lost == 0


@pytest.mark.process  # axis bench starts a hub
def test_the_national_mix_counts_what_a_document_costs() -> None:
    """The seed-2020 bench runs the national mix end to end and counts per document what
    the issue asks for: requests by route (the carried inbox read and the batch ack among
    them), handshakes, signed packages, CPU, the hub's memory; nothing lost or refused."""
    done = cli("axis", "bench", "--scenario", "seed-2020", "--documents", "40", "--json")
    figures = json.loads(done.stdout)
    assert figures["documents"] == 40 and figures["lost"] == figures["refused"] == 0
    routes = figures["requests_per_doc_by_route"]
    assert {"POST /v1/packages", "GET /v1/inbox", "POST /v1/acks"} <= set(routes)
    assert figures["requests_per_doc"] == pytest.approx(sum(routes.values()), abs=0.05)
    assert routes["POST /v1/packages"] == pytest.approx(figures["signed_packages_per_doc"], abs=0.2)
    assert figures["deliveries_per_doc"] >= 1 and figures["signed_packages_per_doc"] > 1
    assert 0 < figures["tls_handshakes_per_doc"] and figures["hub_cpu_ms_per_doc"] > 0
    assert figures["agencies_cpu_ms_per_doc"] > 0 and figures["hub_rss_mb_peak"] > 10
    # The hub's sockets: its listeners and the agencies' connections (two each at most).
    sockets = list(figures["hub_sockets_series"].values())
    assert sockets and all(n is not None and 2 < n <= 2 * 95 + 16 for n in sockets)
    assert figures["projected_window_min"] > 0 and figures["window_documents"] == 273_913
    # The machine's speed, measured before the run, takes the day out of the CPU figures.
    floor_ms = figures["floor_ms_per_package"]
    assert floor_ms > 0
    assert figures["hub_cpu_floors_per_doc"] == pytest.approx(
        figures["hub_cpu_ms_per_doc"] / floor_ms, rel=0.02
    )
    assert figures["agencies_cpu_floors_per_doc"] == pytest.approx(
        figures["agencies_cpu_ms_per_doc"] / floor_ms, rel=0.02
    )
    assert figures["database_cpu_floors_per_doc"] is None
    assert figures["database_cpu_ms_per_doc"] is None  # SQLite: in the hub's own figure
    # What the run kept busy, of the machine's cores: its CPU per document times its rate.
    busy = (figures["hub_cpu_ms_per_doc"] + figures["agencies_cpu_ms_per_doc"]) * figures[
        "docs_per_s"
    ]
    assert figures["cores_busy"] == pytest.approx(busy / 1000, rel=0.05, abs=0.01)
    assert 0 < figures["cores_busy"] and figures["cores"] >= 1
    # The event loops' threads: a share of one core each, within what their process used.
    hub_cores = figures["hub_cpu_ms_per_doc"] * figures["docs_per_s"] / 1000
    assert 0 < figures["hub_loop_busy"] <= hub_cores + 0.05
    agencies_cores = figures["agencies_cpu_ms_per_doc"] * figures["docs_per_s"] / 1000
    assert 0 < figures["agencies_loop_busy"] <= agencies_cores + 0.05
    # The half-rate sends as the hub timed them, read from its histogram: there were some.
    assert 0 < figures["hub_p50_ms"] <= figures["hub_p99_ms"]
    # The contract's floor: every step timed, a document at least one edoc's way through
    # (signed, taken, a receipt, a row, a request), the agencies' checks on top, and the
    # window at the floor on every core.
    steps = figures["contract_steps_ms"]
    assert set(steps) == {f.name for f in dataclasses.fields(ContractCosts)}
    assert all(ms > 0 for ms in steps.values())
    one_edoc = sum(
        steps[k] for k in ("edoc_signed", "edoc_taken", "receipt_signed", "stored", "request")
    )
    assert figures["contract_ms_per_doc"] > one_edoc
    assert figures["checked_ms_per_doc"] > figures["contract_ms_per_doc"] + steps["edoc_read"]
    assert figures["contract_window_min"] == pytest.approx(
        273_913 * figures["contract_ms_per_doc"] / 1000 / figures["cores"] / 60, rel=0.01, abs=0.1
    )


def test_the_contracts_floor_weighs_each_step_by_the_mix() -> None:
    """A document's floor: its edocs signed and taken, its statuses signed and taken, every
    package's receipt and row, every request; the agencies' checks add each receipt checked
    and each edoc verified once."""
    costs = ContractCosts(
        edoc_signed=1,
        edoc_taken=2,
        edoc_read=4,
        status_signed=8,
        status_taken=16,
        receipt_signed=32,
        receipt_checked=64,
        stored=128,
        request=256,
    )
    assert costs.required(edocs=1, statuses=0, requests=0) == 1 + 2 + 160
    assert costs.required(edocs=0, statuses=1, requests=0) == 24 + 160
    assert costs.required(edocs=1, statuses=2, requests=4) == 3 + 2 * 24 + 3 * 160 + 4 * 256
    assert costs.checked(edocs=1, statuses=2, requests=4) == (
        costs.required(edocs=1, statuses=2, requests=4) + 3 * 64 + 4
    )


@pytest.mark.process  # axis bench starts a hub
def test_a_bench_stopped_with_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGTERM (what timeout(1), systemd and kill send) stops a bench as Ctrl-C does: its hub
    stops, its temporary data folder is removed, and it exits 143. Python's default SIGTERM
    ended it at once and left the folder (and, but for die_with_parent, the hub)."""
    command = [str(BIN / "axis"), "bench", "--scenario", "seed-2020", "--documents", "3000",
               "--json"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    bench_run = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # Under way: the hub is serving, its data folder in ours.
        while not any(tmp_path.glob("axis-simulate-*/data/serve.log")):
            assert bench_run.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        hub = _hub_pid(tmp_path, deadline)
        time.sleep(1.0)
        bench_run.send_signal(signal.SIGTERM)
        _, stderr = bench_run.communicate(timeout=60)
    finally:
        if bench_run.poll() is None:
            bench_run.kill()
            bench_run.wait()
        if bench_run.stderr is not None:  # left open when communicate() timed out: a
            bench_run.stderr.close()  # ResourceWarning that failed whichever test came next
    assert bench_run.returncode == 128 + signal.SIGTERM, stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ProcessLookupError):  # gone, not merely orphaned
        os.kill(hub, 0)


def _hub_pid(folder: Path, deadline: float) -> int:
    """The pid of the ``axis serve`` whose data folder is under ``folder``."""
    while time.monotonic() < deadline:
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if str(folder).encode() in (proc / "cmdline").read_bytes():
                    if b"serve" in (proc / "cmdline").read_bytes():
                        return int(proc.name)
        time.sleep(0.1)
    raise AssertionError("no axis serve under " + str(folder))


def test_a_quantile_of_the_hubs_histogram_is_its_buckets_upper_edge() -> None:
    from nodes.sim.bench_mix import bucket_quantile

    cumulative = {0.005: 10, 0.01: 90, 0.025: 99, 0.05: 100, float("inf"): 100}
    assert bucket_quantile(cumulative, 0.5) == 10.0
    assert bucket_quantile(cumulative, 0.99) == 25.0
    assert bucket_quantile(cumulative, 1.0) == 50.0
    assert bucket_quantile({0.005: 0, float("inf"): 0}, 0.99) is None
    assert bucket_quantile({0.005: 0, float("inf"): 3}, 0.5) == float("inf")
