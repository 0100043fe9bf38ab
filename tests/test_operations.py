"""Operators' view through a real hub: statistics that add up, the log and its proof,
metrics, and structured logs."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from axis.core import pki
from axis.core.logchain import link
from axis.http.sockets import bind
from axis.store.sqlite import SqliteStore
from axis.usecases.operations import Checkpointer
from axis.usecases.verification import Cadence, verify_log
from axis.web.admin import admin_app
from axis.web.metrics import HubMetrics
from tests.conftest import LiveHub
from tests.helpers import SWAPPED_FINGERPRINT, cli

G22, H41, H10 = "000.00.00.G22", "000.00.00.H41", "000.00.00.H10"


async def scripted_exchange(hub: LiveHub) -> dict[str, str]:
    """Three documents, four deliveries, four statuses, one recall, in known states."""
    g22, h41, h10 = hub.client(G22), hub.client(H41), hub.client(H10)
    a = (await g22.send([H41, H10], "Văn bản A")).answer["id"]
    b = (await g22.send([H41], "Văn bản B")).answer["id"]
    c = (await h41.send([G22], "Báo cáo C")).answer["id"]
    await h41.get(a)
    await h41.ack(a)  # A→H41 acknowledged
    await h10.status(a, "01")  # A→H10 acknowledged by status 01
    await h10.status(a, "03")
    await g22.get(c)  # C→G22 delivered
    await g22.status(c, "05")
    recall = (await g22.recall(b)).answer["id"]  # B→H41 recalled (not fetched)
    await h41.status(recall, "03")  # agrees to the recall
    return {"a": a, "b": b, "c": c, "recall": recall}


async def admin_get(hub: LiveHub, path: str, token: str | None = "") -> aiohttp.ClientResponse:
    headers = {}
    token = hub.data.admin_token.read_text().strip() if token == "" else token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        response = await http.get(hub.running.admin_url + path, headers=headers)
        await response.read()
        return response


@pytest.mark.process  # runs axis stats / axis log verify
async def test_statistics_add_up_exactly(hub: LiveHub) -> None:
    await scripted_exchange(hub)
    response = await admin_get(hub, "/v1/stats")
    assert response.status == 200
    stats = json.loads(await response.read())
    assert stats["documents"] == 4  # A, B, C and the recall of B
    assert stats["statuses"] == 4
    assert stats["deliveries"] == 5  # A×2, B, C, recall
    # As the axis counts: 4 sent + 5 received.
    assert (stats["sent"], stats["received"], stats["sent_and_received"]) == (4, 5, 9)
    assert stats["convention"].startswith("sent + received")
    # A→H41 and A→H10 acknowledged; C→G22 and the recall→H41 fetched; B→H41 recalled.
    assert stats["by_state"] == {"acknowledged": 2, "delivered": 2, "recalled": 1}
    assert stats["by_status_code"] == {"01": 1, "03": 2, "05": 1}
    assert stats["agencies"] == {"registered": 3, "active": 3}
    today = datetime.now(UTC).date().isoformat()
    assert stats["per_day"] == [{"day": today, "documents": 4, "statuses": 4, "deliveries": 5}]
    assert stats["top_senders"] == [
        {"organ_id": G22, "count": 3},
        {"organ_id": H41, "count": 1},
    ]
    assert stats["top_recipients"][0] == {"organ_id": H41, "count": 3}
    latency = stats["latency_ms"]
    assert latency["p50"] is not None and latency["p50"] <= latency["p95"] <= latency["p99"]

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = json.loads(await (await admin_get(hub, f"/v1/stats?from={tomorrow}")).read())
    assert later["documents"] == 0 and later["per_day"] == []
    assert (await admin_get(hub, "/v1/stats?from=yesterday")).status == 422
    assert (await admin_get(hub, "/v1/stats", token=None)).status == 403
    assert (await admin_get(hub, "/v1/stats", token="wrong")).status == 403

    shown = json.loads(cli("axis", "stats", "--json", "--data", hub.data.root).stdout)
    assert shown == stats
    table = cli("axis", "stats", "--data", hub.data.root, "--to", today).stdout
    assert "acknowledged" in table and today in table


@pytest.mark.process  # runs axis stats / axis log verify
async def test_the_log_pages_and_verifies(hub: LiveHub) -> None:
    ids = await scripted_exchange(hub)
    first = json.loads(await (await admin_get(hub, "/v1/log?limit=5")).read())
    assert [e["seq"] for e in first["entries"]] == [1, 2, 3, 4, 5]
    assert first["entries"][0]["event"] == "agency-registered"
    rest = json.loads(await (await admin_get(hub, f"/v1/log?after={first['next']}")).read())
    events = [(e["event"], e["package_id"]) for e in first["entries"] + rest["entries"]]
    assert ("received", ids["a"]) in events and ("recalled", ids["b"]) in events
    assert rest["entries"][0]["prev"] == first["entries"][-1]["hash"]
    trace = await hub.client(G22).trace(ids["a"])
    assert [(h["event"], h["organ_id"], h["detail"]) for h in trace] == [
        ("received", "000.00.00.A00", f"from {G22} to {H10},{H41}"),
        ("delivered", H41, "fetched"),
        ("acknowledged", H41, "acked"),
        ("delivered", H10, "fetched"),  # axis-node status reads the document first
        ("status", H10, "01"),
        ("acknowledged", H10, "status 01"),
        ("status", H10, "03"),
    ]

    store = hub.running.hub.store
    checkpointer = Checkpointer(store, pki.load_key(hub.data.hub_key.read_bytes()), 1000, 60)
    seq, head = await store.log_head()
    assert head is not None
    # The hub's own checkpointer may have signed the registrations already, at its start.
    signed_before = len(await store.checkpoints())
    await checkpointer.sign(seq, head)
    report = await verify_log(store, pki.load_cert(hub.data.hub_cert.read_bytes()))
    assert report.ok and report.entries == seq and report.checkpoints == signed_before + 1
    assert report.packages == 8
    ok = cli("axis", "log", "verify", "--data", hub.data.root)
    assert "OK" in ok.stdout


async def problem_found(hub: LiveHub) -> str:
    """What ``axis log verify`` reports, found in-process on a store of its own, as the
    command opens one (the command itself is run by the tests of the log's pages and of a
    changed package)."""
    store = SqliteStore(hub.data.database)
    await store.open()
    try:
        report = await verify_log(store, pki.load_cert(hub.data.hub_cert.read_bytes()))
    finally:
        await store.close()
    assert report.problem is not None, "verification found nothing wrong"
    return report.problem


def _tamper(hub: LiveHub, sql: str, *args: object) -> None:
    with sqlite3.connect(hub.data.database) as db:
        db.execute(sql, args)


@pytest.mark.process  # runs axis stats / axis log verify
async def test_log_verify_names_a_changed_package(hub: LiveHub) -> None:
    ids = await scripted_exchange(hub)
    _tamper(
        hub,
        "UPDATE packages SET body = replace(body, 'Văn bản A', 'Văn bản X') WHERE id = ?",
        ids["a"],
    )
    failed = cli("axis", "log", "verify", "--data", hub.data.root, check=False)
    assert failed.returncode == 1
    assert f"package {ids['a']}: changed since it arrived" in failed.stderr


async def test_log_verify_names_a_changed_entry(hub: LiveHub) -> None:
    await scripted_exchange(hub)
    _tamper(hub, "UPDATE log SET detail = '06' WHERE seq = 12")
    assert "entry 12: its content does not match its hash" in await problem_found(hub)


@pytest.mark.parametrize("rewrite", ["rehash", "truncate"])
async def test_checkpoints_catch_a_rewritten_or_shortened_chain(hub: LiveHub, rewrite: str) -> None:
    await scripted_exchange(hub)
    store = hub.running.hub.store
    key = pki.load_key(hub.data.hub_key.read_bytes())
    seq, head = await store.log_head()
    assert head is not None
    await Checkpointer(store, key, 1000, 60).sign(seq, head)
    if rewrite == "truncate":
        _tamper(hub, "DELETE FROM log WHERE seq >= ?", seq - 2)
        expected = f"entry {seq - 2}: missing"
    else:
        # Someone with database access rewrites an entry and recomputes every hash after it:
        # the chain holds, but it no longer ends where the hub signed it.
        with sqlite3.connect(hub.data.database) as db:
            rows = db.execute("SELECT * FROM log ORDER BY seq").fetchall()
            prev = "0" * 64
            for row in rows:
                seq_, at, event, organ_id, package_id, detail, sha, _, _, cert = row
                if seq_ == seq - 2:  # after any checkpoint the hub signed at its start
                    detail = "forged"
                entry = link(prev, seq_, at, event, organ_id, package_id, detail, sha, cert)
                db.execute(
                    "UPDATE log SET detail = ?, prev = ?, hash = ? WHERE seq = ?",
                    (entry.detail, entry.prev, entry.hash, seq_),
                )
                prev = entry.hash
        expected = f"entry {seq}: differs from what checkpoint {seq} signed"
    assert expected in await problem_found(hub)


async def test_a_forged_checkpoint_is_caught(hub: LiveHub) -> None:
    await scripted_exchange(hub)
    store = hub.running.hub.store
    seq, head = await store.log_head()
    assert head is not None
    impostor, _ = pki.create_ca("not the hub")
    await Checkpointer(store, impostor, 1000, 60).sign(seq, head)
    assert f"checkpoint {seq}: its signature is not the hub's" in await problem_found(hub)


async def test_metrics(hub: LiveHub) -> None:
    await scripted_exchange(hub)
    sender = hub.client(G22)
    with pytest.raises(Exception):  # noqa: B017 - any refusal; counted by problem type
        await sender.send(["000.00.00.Z99"], "Không có")
    response = await admin_get(hub, "/metrics")
    assert response.status == 200
    text = (await response.read()).decode()
    assert 'axis_packages_received_total{kind="edoc"} 4.0' in text
    assert 'axis_packages_received_total{kind="status"} 4.0' in text
    assert 'axis_packages_rejected_total{problem="unknown-recipient"} 1.0' in text
    # Fetched: A by H41 and H10, C by G22, the recall by H41; still pending: C and the recall.
    assert 'axis_deliveries_delivered_total{via="pull"} 4.0' in text
    assert "axis_queue_depth 2.0" in text
    assert 'axis_request_seconds_count{method="POST",route="/v1/packages",status="201"}' in text
    assert 'axis_connections_open{listener="node"} ' in text
    assert 'axis_connections_opened_total{listener="node"} ' in text
    assert 'axis_connections_refused_total{listener="node"} 0.0' in text
    assert (await admin_get(hub, "/metrics", token=None)).status == 403


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE deliveries SET recipient = '000.00.00.H10' WHERE package_id = :b",
            "package {b}: its sender or recipients are not what the log recorded",
        ),
        (
            "UPDATE packages SET sender = '000.00.00.H10' WHERE id = :a",
            "package {a}: its sender or recipients are not what the log recorded",
        ),
        (
            "UPDATE deliveries SET state = 'queued' WHERE package_id = :a"
            " AND recipient = '000.00.00.H41'",
            "package {a}: the delivery to 000.00.00.H41 is queued/None, the log says"
            " acknowledged/None",
        ),
        (
            "UPDATE deliveries SET status_code = '06' WHERE package_id = :c",
            "package {c}: the delivery to 000.00.00.G22 is delivered/06, the log says delivered/05",
        ),
        (
            "DELETE FROM packages WHERE id = :c",
            "package {c}: missing (the log recorded its arrival at entry",
        ),
        (
            f"UPDATE agencies SET {SWAPPED_FINGERPRINT} WHERE organ_id = '000.00.00.H41'",
            "agency 000.00.00.H41: its certificate is not the one the log recorded",
        ),
        (
            "UPDATE agencies SET active = 0 WHERE organ_id = '000.00.00.H10'",
            "agency 000.00.00.H10: revoked, but the log's last word",
        ),
        (
            "UPDATE log SET detail = X'00FF' WHERE seq = 5",
            "entry 5: its content does not match its hash",
        ),
        ("UPDATE packages SET body = 42 WHERE id = :b", "package {b}: changed since it arrived"),
    ],
    ids=[
        "reroute",
        "sender",
        "unack",
        "status",
        "deleted",
        "certificate",
        "revoked",
        "binary",
        "body-type",
    ],  # fmt: skip
)
async def test_log_verify_catches_changes_beside_the_log(
    hub: LiveHub, tamper: str, expected: str
) -> None:
    ids = await scripted_exchange(hub)
    with sqlite3.connect(hub.data.database) as db:
        db.execute(tamper, ids)
    assert expected.format(**ids) in await problem_found(hub)


async def test_removing_the_checkpoints_and_rewriting_history_is_caught(hub: LiveHub) -> None:
    await scripted_exchange(hub)
    with sqlite3.connect(hub.data.database) as db:
        db.execute("DELETE FROM checkpoints")
        rows = db.execute("SELECT * FROM log ORDER BY seq").fetchall()
        prev = "0" * 64
        for seq, at, event, organ_id, package_id, detail, sha, _, _, cert in rows:
            entry = link(prev, seq, at, event, organ_id, package_id, detail, sha, cert)
            db.execute("UPDATE log SET prev = ?, hash = ? WHERE seq = ?", (prev, entry.hash, seq))
            prev = entry.hash
    store = hub.running.hub.store
    cert = pki.load_cert(hub.data.hub_cert.read_bytes())
    report = await verify_log(store, cert, cadence=Cadence(every=3, interval_s=0.0))
    assert not report.ok and report.problem is not None
    assert "without a signed checkpoint" in report.problem
    assert (await verify_log(store, cert)).ok  # with the real cadence, a short history passes


async def test_a_dashboard_login_holds_on_every_worker(hub: LiveHub) -> None:
    """Under ``axis serve --workers N`` each worker is a process of its own, and the kernel
    hands each connection to any of them: a login made on one must hold on the others (it
    held on one in three when sessions lived in a worker's memory)."""
    token = hub.data.admin_token.read_text().strip()
    # A second worker's operator API: the same hub, its own application and memory.
    runner = web.AppRunner(admin_app(hub.running.hub, token, HubMetrics()), access_log=None)
    await runner.setup()
    sock = bind("127.0.0.1", 0)
    await web.SockSite(runner, sock).start()
    other = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                hub.running.admin_url + "/login", data={"token": token}, allow_redirects=False
            ) as login:
                assert login.status == 303
                session = login.cookies["axis_session"].value
            for where in (hub.running.admin_url, other):
                async with http.get(
                    where + "/v1/dashboard", headers={"Cookie": f"axis_session={session}"}
                ) as answer:
                    assert answer.status == 200, where
            # A cookie changed by its holder (a later expiry, say) is refused everywhere.
            expires, rest = session.split(".", 1)
            forged = f"{int(expires) + 86_400}.{rest}"
            async with http.get(
                other + "/v1/dashboard", headers={"Cookie": f"axis_session={forged}"}
            ) as answer:
                assert answer.status == 403
    finally:
        await runner.cleanup()


async def test_a_revoke_and_a_reactivation_do_not_launder_a_swapped_certificate(
    hub: LiveHub,
) -> None:
    """A reactivation logs no certificate of its own: the one the registration logged stands,
    so a certificate swapped in the table behind the hub's back still shows."""
    _tamper(
        hub,
        f"UPDATE agencies SET {SWAPPED_FINGERPRINT} WHERE organ_id = ?",
        H41,
    )
    store = hub.running.hub.store
    await store.set_agency_active(H41, False)
    await store.set_agency_active(H41, True)
    assert "agency 000.00.00.H41: its certificate is not the one the log recorded" in (
        await problem_found(hub)
    )


@pytest.mark.parametrize(
    "cookie",
    ["1.é.ab", "²²²²²²²²²².n." + "0" * 64, "9999999999.n." + "0" * 64, "", "..", "1.2.3.4"],
    ids=["unicode-nonce", "unicode-digits", "bad-mac", "empty", "dots", "four-parts"],
)
async def test_a_made_up_session_cookie_is_refused_not_an_error(hub: LiveHub, cookie: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(
            hub.running.admin_url + "/v1/stats", headers={"Cookie": f"axis_session={cookie}"}
        ) as answer:
            assert answer.status == 403


def test_the_connection_gates_are_watched_once() -> None:
    """A second collector of the gates' metrics is refused, not exposed twice (a scrape with
    clashing names fails in Prometheus)."""
    from axis.http.sockets import ConnectionGate
    from axis.web.metrics import HubMetrics

    metrics = HubMetrics()
    gates = {"node": ConnectionGate("node API", 10, 5)}
    metrics.watch_connections(gates)
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.watch_connections(gates)
