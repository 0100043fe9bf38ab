"""Two agencies exchange a package through `axis serve` using only the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, free_port, init_data, serving

pytestmark = pytest.mark.process  # each starts processes: hubs, commands, workers

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, int, int]:
    data = tmp_path / "data"
    port, admin_port = free_port(), free_port()
    init_data(data, port)
    for organ_id, name in ((G22, "Văn phòng Chính phủ"), (H41, "UBND tỉnh Nghệ An"), (H10, "X")):
        cli("axis", "agency", "add", organ_id, "--name", name, "--data", data)
    return data, port, admin_port


def test_cli_exchange(folder: tuple[Path, int, int], tmp_path: Path) -> None:
    data, port, admin_port = folder
    listed = json.loads(cli("axis", "agency", "list", "--json", "--data", data).stdout)
    assert [a["organ_id"] for a in listed] == sorted([G22, H41, H10])
    attachment = tmp_path / "to-trinh.pdf"
    attachment.write_bytes(b"%PDF-1.7 to trinh " * 500)
    g22, h41, h10 = (str(data / "agencies" / o) for o in (G22, H41, H10))
    with serving(data, port, admin_port):
        answer = json.loads(
            cli(
                "axis-node", "--profile", g22, "send", "--to", H41,
                "--subject", "Tờ trình phê duyệt đề án", "--file", attachment, "--json",
            ).stdout
        )  # fmt: skip
        assert answer["recipients"] == [H41]
        inbox = json.loads(cli("axis-node", "--profile", h41, "inbox", "--json").stdout)
        assert [i["id"] for i in inbox["items"]] == [answer["id"]]
        out = tmp_path / "received.xml"
        cli("axis-node", "--profile", h41, "get", answer["id"], "-o", out)
        sender_copy = tmp_path / "sent.xml"
        cli("axis-node", "--profile", g22, "get", answer["id"], "-o", sender_copy)
        assert out.read_bytes() == sender_copy.read_bytes()
        if shutil.which("xmlsec1"):
            verified = cli(
                "xmlsec1", "--verify", "--trusted-pem", data / "ca" / "ca.pem", out, check=False
            )
            assert verified.returncode == 0, verified.stderr

        # The third agency sees nothing and may read nothing.
        assert json.loads(cli("axis-node", "--profile", h10, "inbox", "--json").stdout) == {
            "items": []
        }
        refused = cli("axis-node", "--profile", h10, "get", answer["id"], check=False)
        assert refused.returncode != 0 and "not-allowed" in refused.stderr

        cli("axis-node", "--profile", h41, "ack", answer["id"])
        tracked = json.loads(
            cli("axis-node", "--profile", g22, "track", answer["id"], "--json").stdout
        )
        assert [(t["to"], t["state"]) for t in tracked["deliveries"]] == [(H41, "acknowledged")]
        events = [(h["organ_id"], h["event"]) for h in tracked["trace"]]
        assert events == [
            ("000.00.00.A00", "received"),
            (H41, "delivered"),
            (H41, "acknowledged"),
        ]
        bad = cli(
            "axis-node", "--profile", g22, "send", "--to", "000.00.00.Z99", "--subject", "x",
            check=False,
        )  # fmt: skip
        assert bad.returncode != 0 and "unknown-recipient" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1

        # Statuses and recalls from the command line.
        status = json.loads(
            cli("axis-node", "--profile", h41, "status", answer["id"], "--code", "03",
                "--description", "Đã tiếp nhận", "--json").stdout
        )  # fmt: skip
        assert status["kind"] == "status" and status["recipients"] == [G22]
        g22_inbox = json.loads(cli("axis-node", "--profile", g22, "inbox", "--json").stdout)
        assert [i["id"] for i in g22_inbox["items"]] == [status["id"]]
        wide = {**os.environ, "COLUMNS": "200"}
        shown = cli("axis-node", "--profile", g22, "track", answer["id"], env=wide).stdout
        assert "03 đã tiếp nhận" in shown  # the delivery's last code, with its meaning
        assert re.search(r"status\s*│\s*03", shown)  # the trace's entry for it
        unknown = cli("axis-node", "--profile", h41, "status", answer["id"], "--code", "07",
                      check=False)  # fmt: skip
        assert unknown.returncode != 0 and "07" in unknown.stderr

        second = json.loads(
            cli("axis-node", "--profile", g22, "send", "--to", H41, "--subject", "Nhầm",
                "--json").stdout
        )  # fmt: skip
        recall = json.loads(
            cli("axis-node", "--profile", g22, "recall", second["id"], "--reason", "Nhầm",
                "--json").stdout
        )  # fmt: skip
        assert recall["recipients"] == [H41]
        h41_inbox = json.loads(cli("axis-node", "--profile", h41, "inbox", "--json").stdout)
        assert [i["id"] for i in h41_inbox["items"]] == [recall["id"]]

        # Revocation takes effect at once on the running hub, without a restart.
        cli("axis", "agency", "revoke", H41, "--data", data)
        refused = cli("axis-node", "--profile", h41, "inbox", check=False)
        assert refused.returncode != 0 and "revoked" in refused.stderr
        # What H41 sent before stays valid: G22 still reads H41's status.
        cli("axis-node", "--profile", g22, "get", status["id"], "-o", tmp_path / "st.xml")


def test_admin_commands_refuse_clearly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli("axis", "init", "--data", data)
    assert (data / "admin.token").stat().st_mode & 0o777 == 0o600
    again = cli("axis", "init", "--data", data, check=False)
    assert again.returncode != 0 and "already initialised" in again.stderr

    bad = cli("axis", "agency", "add", "28.22.H17", "--name", "x", "--data", data, check=False)
    assert bad.returncode != 0 and "not an OrganId" in bad.stderr
    cli("axis", "agency", "add", G22, "--name", "Văn phòng Chính phủ", "--data", data)
    twice = cli("axis", "agency", "add", G22, "--name", "x", "--data", data, check=False)
    assert twice.returncode != 0 and "already registered" in twice.stderr

    # A certificate from a CA the hub does not trust: refused, and no profile is left behind.
    foreign = tmp_path / "other"
    cli("axis", "init", "--data", foreign)
    cli("axis", "agency", "add", H41, "--name", "x", "--data", foreign)
    outsider = cli(
        "axis", "agency", "add", H41, "--name", "x", "--data", data,
        "--cert", foreign / "agencies" / H41 / "cert.pem", check=False,
    )  # fmt: skip
    assert outsider.returncode != 0 and "does not trust" in outsider.stderr
    assert not (data / "agencies" / H41).exists()

    for endpoint in ("http://127.0.0.1:9/", "https://a..b/", "https:///x", "ftp://h/"):
        refused = cli("axis", "agency", "add", H10, "--name", "x", "--endpoint", endpoint,
                      "--data", data, check=False)  # fmt: skip
        assert refused.returncode != 0 and "push endpoint" in refused.stderr, endpoint
        assert not (data / "agencies" / H10).exists()

    unknown = cli("axis", "agency", "revoke", H41, "--data", data, check=False)
    assert unknown.returncode != 0 and "no agency" in unknown.stderr
    cli("axis", "agency", "revoke", G22, "--data", data)
    listed = json.loads(cli("axis", "agency", "list", "--json", "--data", data).stdout)
    assert [(a["organ_id"], a["active"]) for a in listed] == [(G22, False)]

    workers = cli("axis", "serve", "--workers", "2", "--data", data, check=False)
    assert workers.returncode != 0 and "PostgreSQL" in workers.stderr
    missing = cli("axis", "agency", "list", "--data", tmp_path / "nowhere", check=False)
    assert missing.returncode != 0 and "axis init" in missing.stderr


def test_json_logs_follow_one_package(folder: tuple[Path, int, int]) -> None:
    data, port, admin_port = folder
    g22, h41 = (str(data / "agencies" / o) for o in (G22, H41))
    with serving(data, port, admin_port, "--log-format", "json"):
        sent = json.loads(
            cli("axis-node", "--profile", g22, "send", "--to", H41, "--subject", "Nhật ký",
                "--json").stdout
        )  # fmt: skip
        cli("axis-node", "--profile", h41, "get", sent["id"], "-o", data / "x.xml")
        cli("axis-node", "--profile", h41, "ack", sent["id"])
        cli("axis-node", "--profile", h41, "get", "0" * 32, check=False)
    lines = [json.loads(line) for line in (data / "serve.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    about = [line for line in lines if line.get("package_id") == sent["id"]]
    requests = [(x["method"], x["status"]) for x in about if x["logger"] == "axis.access"]
    assert requests == [("POST", 201), ("GET", 200), ("POST", 204)]
    changes = [x["event"] for x in about if x["logger"] == "axis.events"]
    assert changes == ["received", "delivered", "acknowledged"]
    refused = [x for x in lines if x.get("problem") == "unknown-document"]
    assert refused and refused[0]["status"] == 404 and refused[0]["agency"] == H41
