"""The traffic model of the national axis's launch window, pure and seeded.

Documents are spread over the days by weight (working days full, weekends light, public
holidays and Tết almost empty, the fortnight before Tết busier), over office hours within a day
(08:00–11:30 and 13:30–17:00, Vietnam time), sent by agencies weighted by how much they write
(the Government Office most), to mostly one recipient, some to a handful or dozens, and a few
broadcasts to all 63 provinces. Each recipient's answer (its business status codes, and the
office hours each takes after the step before it) is drawn from a hash of the seed, the document
and the recipient, so it needs no memory and a run with the same seed gives the same documents,
recipients, statuses and times.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from nodes.sim.country import SimAgency, Tier

WINDOW = (date(2019, 12, 9), date(2020, 2, 10))
PUBLISHED_DOCUMENTS = 1_260_000  # as the axis counts: documents sent plus received
RECEIPTS_PER_DOCUMENT = 3.6  # the axis's own ratio (July 2022: 485,666 / 135,164)
BROADCAST_SHARE = 0.033  # of a central agency's documents: to all 63 provinces
ONE_SHARE = 0.70  # one recipient; then a handful (2-5) up to FEW_SHARE, then 6-20
FEW_SHARE = 0.92
PUBLISHED_AGENCIES = 95
TET_HOLIDAY = (date(2020, 1, 23), date(2020, 1, 29))  # Tết Canh Tý: 25 Jan 2020
NEW_YEAR = date(2020, 1, 1)
PRE_TET_RUSH = (date(2020, 1, 13), date(2020, 1, 22))

TOPICS = (
    "chuyển đổi số", "cải cách hành chính", "phòng chống thiên tai", "an toàn thông tin",
    "tổng kết công tác năm 2019", "kế hoạch năm 2020", "chuẩn bị đón Tết Canh Tý",
    "phòng chống dịch bệnh", "giải ngân vốn đầu tư công", "quản lý giá dịp Tết",
    "thực hiện Nghị quyết của Chính phủ", "bảo đảm trật tự an toàn giao thông",
    "kết nối liên thông văn bản điện tử", "thi đua khen thưởng", "công tác cán bộ",
)  # fmt: skip
VERBS = ("V/v triển khai", "V/v báo cáo", "V/v góp ý dự thảo về", "V/v hướng dẫn", "V/v đôn đốc")
UPDATE_SHARE = 0.01  # documents their sender updates once (a corrected subject)
STATUS_PLANS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (0.10, ("01", "03", "04", "05", "06")),  # the whole business life, reported step by step
    (0.20, ("01", "03")),
    (0.20, ("03",)),
    (0.05, ("02",)),  # refused
    (0.45, ()),  # acknowledged, the rest handled outside the axis
)


# When recipients work on what they received: on working days (Monday to Friday, not New
# Year's Day nor the Tết holiday, when offices are closed as the day weights say).
OFFICE = (time(8, 0), time(17, 0))
# How long a recipient takes to send each status after its previous step, in office hours
# (fewest, most): taking a document in is quick, handling it takes days. 01 is the
# acknowledgement itself and goes as the document is read.
ANSWER_HOURS: Mapping[str, tuple[float, float]] = {
    "02": (0.5, 8.0),  # refused, after a look
    "03": (0.25, 4.0),  # taken in (registered)
    "04": (1.0, 9.0),  # assigned to whoever handles it
    "05": (2.0, 18.0),  # being handled
    "06": (9.0, 45.0),  # done: one to five working days
    "15": (0.25, 2.0),  # an update agreed to
}


def documents_for(events: int) -> int:
    """How many documents to send for ``events`` as the axis counts them (sent + received),
    at the calibrated RECEIPTS_PER_DOCUMENT: the published 1,260,000 is about 274,000."""
    return max(1, round(events / (1 + RECEIPTS_PER_DOCUMENT)))


def holiday(day: date) -> bool:
    """A public holiday of the window: New Year's Day, or Tết."""
    return day == NEW_YEAR or TET_HOLIDAY[0] <= day <= TET_HOLIDAY[1]


def day_weight(day: date) -> float:
    """How busy a day is, relative to an ordinary working day."""
    if holiday(day):
        return 0.02
    if day.weekday() == 6:
        return 0.04
    if day.weekday() == 5:
        return 0.12
    if PRE_TET_RUSH[0] <= day <= PRE_TET_RUSH[1]:
        return 1.25
    if day in (date(2020, 1, 30), date(2020, 1, 31)):
        return 0.7  # back from Tết, not yet at full speed
    return 1.0


def days(start: date = WINDOW[0], end: date = WINDOW[1]) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def per_day(documents: int, window: Sequence[date]) -> list[int]:
    """Split ``documents`` over the days by weight (largest remainders, so they add up)."""
    weights = [day_weight(d) for d in window]
    total = sum(weights)
    exact = [documents * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)[
        : documents - sum(counts)
    ]:
        counts[i] += 1
    return counts


@dataclass(frozen=True)
class PlannedDocument:
    n: int
    sender: str
    recipients: tuple[str, ...]
    sent_at: datetime  # Vietnam time, naive, on the simulated clock
    priority: int
    attachment_bytes: int
    subject: str
    updated: bool = False  # its sender updates it once accepted (BussinessDocType 2)


class TrafficModel:
    """Plans the documents of one run."""

    def __init__(
        self,
        agencies: Sequence[SimAgency],
        seed: int,
        attachment_kb: float = 20,
        first_number: int = 1,
        window: Sequence[date] | None = None,
    ) -> None:
        """``first_number`` keeps a second run's DocumentIds apart from the first's (the same
        number on the same day from the same sender would be the same document). ``window``:
        the days the documents fall on (the launch window's, by default)."""
        self.window = tuple(window) if window is not None else None
        self.agencies = tuple(agencies)
        self.seed = seed
        self.attachment_kb = attachment_kb
        self.first_number = first_number
        self._senders = [a.organ_id for a in self.agencies]
        self._sender_weights = [_writes(a) for a in self.agencies]
        self._provinces = [a.organ_id for a in self.agencies if a.tier is Tier.PROVINCE]
        self._central = [a.organ_id for a in self.agencies if a.tier is not Tier.PROVINCE]

    def documents(self, total: int) -> Iterator[PlannedDocument]:
        """The run's documents in time order, generated day by day (no list of them all)."""
        n = 0
        window = list(self.window or days())
        for day, count in zip(window, per_day(total, window), strict=True):
            rng = random.Random(f"{self.seed}:{day.isoformat()}")
            stamps = sorted(_office_time(rng) for _ in range(count))
            for stamp in stamps:
                n += 1
                planned = self._document(rng, n, datetime.combine(day, stamp))
                yield (
                    replace(planned, n=n + self.first_number - 1)
                    if self.first_number != 1
                    else planned
                )

    def _document(self, rng: random.Random, n: int, sent_at: datetime) -> PlannedDocument:
        sender = rng.choices(self._senders, self._sender_weights)[0]
        return PlannedDocument(
            n=n,
            sender=sender,
            recipients=self._recipients(rng, sender),
            sent_at=sent_at,
            priority=rng.choices((0, 1, 2, 3), (85, 10, 4, 1))[0],
            attachment_bytes=self._attachment_size(rng),
            subject=f"{rng.choice(VERBS)} {rng.choice(TOPICS)}",
            updated=_share(f"{self.seed}|update|{n}") < UPDATE_SHARE,
        )

    def _recipients(self, rng: random.Random, sender: str) -> tuple[str, ...]:
        others = [a for a in self._senders if a != sender]
        roll = rng.random()
        central_sender = sender in self._central
        # Calibrated to the axis's published ratio, about 3.6 receipts per document sent
        # (July 2022: 485,666 received for 135,164 sent): mostly one recipient, some a
        # handful or dozens, and the centre's broadcasts to every province.
        if roll < BROADCAST_SHARE and central_sender and self._provinces:
            return tuple(p for p in self._provinces if p != sender)  # to every province
        fan_out = (
            1 if roll < ONE_SHARE else rng.randint(2, 5) if roll < FEW_SHARE else rng.randint(6, 20)
        )
        fan_out = min(fan_out, len(others))
        upward = 0.7 if not central_sender else 0.4  # provinces mostly write to the centre
        pool_central = [a for a in self._central if a != sender]
        pool_provinces = [a for a in self._provinces if a != sender]
        chosen: set[str] = set()
        while len(chosen) < fan_out:
            pool = pool_central if (rng.random() < upward and pool_central) else pool_provinces
            chosen.add(rng.choice(pool or others))
        return tuple(sorted(chosen))

    def _attachment_size(self, rng: random.Random) -> int:
        # Log-normal around the median, as document sizes are: most small, a few large scans.
        size = self.attachment_kb * 1024 * math.exp(rng.gauss(0, 0.9))
        return int(min(max(size, 512), 8 * 1024 * 1024))

    def answered_at(self, document_id: str, recipient: str, code: str, after: datetime) -> datetime:
        """When ``recipient`` sends status ``code`` about ``document_id``, its previous step
        (reading the document, or its previous status) having been at ``after``: some office
        hours later (:data:`ANSWER_HOURS`), drawn from a hash like the codes themselves."""
        fewest, most = ANSWER_HOURS.get(code, (0.0, 0.0))
        share = _share(f"{self.seed}|{document_id}|{recipient}|{code}|answered")
        return after_office_hours(after, fewest + (most - fewest) * share)

    def statuses(self, document_id: str, recipient: str) -> tuple[str, ...]:
        """The business status codes ``recipient`` answers ``document_id`` with."""
        digest = hashlib.sha256(f"{self.seed}|{document_id}|{recipient}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        for share, codes in STATUS_PLANS:
            if roll < share:
                return codes
            roll -= share
        return ()


class PointToPoint(TrafficModel):
    """The benchmark's exchange (``axis bench``): each document goes to one other agency with
    one attachment of exactly ``attachment_kb``, and its recipient acknowledges it with no
    business status. So every document is the pipeline and nothing more: sign, send, verify,
    store, route, fetch, ack."""

    def _recipients(self, rng: random.Random, sender: str) -> tuple[str, ...]:
        return (rng.choice([a for a in self._senders if a != sender]),)

    def _attachment_size(self, rng: random.Random) -> int:
        return int(self.attachment_kb * 1024)

    def statuses(self, document_id: str, recipient: str) -> tuple[str, ...]:
        return ()


def working_day(day: date) -> bool:
    """Monday to Friday, and not a public :func:`holiday`."""
    return day.weekday() < 5 and not holiday(day)


def after_office_hours(start: datetime, hours: float) -> datetime:
    """``start`` plus ``hours`` of office time (:data:`OFFICE` on a :func:`working_day`, in
    ``start``'s own time zone): what a day's end leaves carries to the next working morning."""
    at, left = _in_office(start), timedelta(hours=hours)
    while True:
        closing = datetime.combine(at.date(), OFFICE[1], at.tzinfo)
        if at + left <= closing:
            return at + left
        left -= closing - at
        at = _in_office(closing)


def _in_office(at: datetime) -> datetime:
    """``at``, or the next opening of the office after it."""
    while True:
        if not working_day(at.date()) or at.time() >= OFFICE[1]:
            at = datetime.combine(at.date() + timedelta(days=1), OFFICE[0], at.tzinfo)
        elif at.time() < OFFICE[0]:
            at = datetime.combine(at.date(), OFFICE[0], at.tzinfo)
        else:
            return at


def _share(key: str) -> float:
    """A number in [0, 1) drawn from ``key`` alone (no draw from the plan's generator, so a
    seed plans the same documents, recipients and times whatever else is decided)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def dialects_of(
    agencies: Sequence[SimAgency], mix: Mapping[str, float], seed: int
) -> dict[str, str]:
    """Which dialect of edXML each agency's software writes (:mod:`axis.core.edxml_dialects`):
    shares of the agencies by the weights of ``mix`` (largest remainders; each dialect one
    agency at least while there are agencies enough, so every run exercises each), dealt to
    the agencies in an order the seed draws."""
    total = sum(mix.values())
    exact = {name: len(agencies) * weight / total for name, weight in mix.items()}
    counts = {name: max(1, math.floor(x)) for name, x in exact.items()}
    by_remainder = sorted(exact, key=lambda n: (counts[n] - exact[n], n))
    while sum(counts.values()) < len(agencies):
        counts[by_remainder[sum(counts.values()) % len(by_remainder)]] += 1
    while sum(counts.values()) > len(agencies) and max(counts.values()) > 1:
        counts[max(counts, key=lambda n: (counts[n], n))] -= 1  # the ones at least once
    dealt = [name for name, n in counts.items() for _ in range(n)][: len(agencies)]
    order = sorted(agencies, key=lambda a: _share(f"{seed}|dialect|{a.organ_id}"))
    return {agency.organ_id: name for agency, name in zip(order, dealt, strict=False)}


def _writes(agency: SimAgency) -> float:
    if agency.organ_id.endswith("G22"):
        return 6.0  # the Government Office
    return {Tier.PARTY: 3.0, Tier.MINISTRY: 2.0, Tier.PROVINCE: 1.0}[agency.tier]


def _office_time(rng: random.Random) -> time:
    minutes = (
        rng.uniform(8 * 60, 11.5 * 60) if rng.random() < 0.6 else rng.uniform(13.5 * 60, 17 * 60)
    )
    whole = int(minutes)
    return time(whole // 60, whole % 60, int((minutes - whole) * 60))


@dataclass(frozen=True)
class Faults:
    """What goes wrong in a run with ``--faults``: agencies whose software is offline for a
    stretch of the run, agencies that handle their inbox slowly, and a share of broken
    packages (half with a bad signature, half to an unknown recipient)."""

    offline: frozenset[str] = frozenset()
    offline_from: float = 0.2  # share of the documents sent when they go offline …
    offline_until: float = 0.5  # … and when they come back
    slow: frozenset[str] = frozenset()
    slow_s: float = 0.2  # extra time a slow agency takes per package
    broken_share: float = 0.0

    def broken(self, seed: int, n: int) -> str | None:
        """ "bad-signature", "unknown-recipient" or None for planned document ``n``."""
        if self.broken_share <= 0:
            return None
        digest = hashlib.sha256(f"{seed}|broken|{n}".encode()).digest()
        roll = int.from_bytes(digest[:8], "big") / 2**64
        if roll >= self.broken_share:
            return None
        return "bad-signature" if digest[31] % 2 == 0 else "unknown-recipient"


def plan_faults(agencies: Sequence[SimAgency], seed: int) -> Faults:
    """The default fault plan: about 5 % of agencies offline for a while, 5 % slow, 2 % of
    packages broken."""
    rng = random.Random(f"{seed}:faults")
    ids = [a.organ_id for a in agencies]
    share = max(1, round(len(ids) * 0.05))
    chosen = rng.sample(ids, min(len(ids), 2 * share))
    return Faults(
        offline=frozenset(chosen[:share]),
        slow=frozenset(chosen[share:]),
        broken_share=0.02,
    )
