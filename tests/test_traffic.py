"""The seed-2020 traffic model, pure: no hub."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from nodes.client import VIETNAM
from nodes.sim.country import Tier, first, seed_2020
from nodes.sim.traffic import (
    ANSWER_HOURS,
    WINDOW,
    TrafficModel,
    after_office_hours,
    day_weight,
    days,
    dialects_of,
    per_day,
    working_day,
)


def test_the_country_has_95_agencies_with_organ_ids() -> None:
    agencies = seed_2020()
    assert len(agencies) == 95 == len({a.organ_id for a in agencies})
    tiers = Counter(a.tier for a in agencies)
    assert tiers == {Tier.PARTY: 1, Tier.MINISTRY: 31, Tier.PROVINCE: 63}
    by_id = {a.organ_id: a.name for a in agencies}
    assert by_id["000.00.00.G22"] == "Văn phòng Chính phủ"
    assert by_id["000.00.00.A01"] == "Văn phòng Trung ương Đảng"
    assert "UBND thành phố Hà Nội" in by_id.values()
    assert [a.organ_id for a in first(4)] == [
        "000.00.00.A01", "000.00.00.G01", "000.00.00.H01", "000.00.00.G02",
    ]  # fmt: skip


def test_documents_stay_in_the_window_and_add_up() -> None:
    model = TrafficModel(seed_2020(), seed=1)
    documents = list(model.documents(5000))
    assert len(documents) == 5000
    assert all(WINDOW[0] <= d.sent_at.date() <= WINDOW[1] for d in documents)
    assert all(8 <= d.sent_at.hour < 17 for d in documents)  # office hours
    assert [d.n for d in documents] == list(range(1, 5001))
    assert all(d.sender not in d.recipients and d.recipients for d in documents)
    assert sum(per_day(1_260_000, days())) == 1_260_000


def test_a_model_given_a_slice_of_the_window_keeps_its_documents_in_it() -> None:
    # The half-rate stage of the national bench: its documents as dense as the full stage's.
    slice_ = days()[:2]
    documents = list(TrafficModel(seed_2020(), seed=3, window=slice_).documents(300))
    assert len(documents) == 300
    assert {d.sent_at.date() for d in documents} == set(slice_)


def test_tet_carries_clearly_less_traffic() -> None:
    documents = list(TrafficModel(seed_2020(), seed=2).documents(20_000))
    by_day = Counter(d.sent_at.date() for d in documents)

    def week(start: date) -> int:
        return sum(by_day[start + timedelta(days=i)] for i in range(7))

    tet_week, week_before = week(date(2020, 1, 23)), week(date(2020, 1, 16))
    assert tet_week * 5 < week_before
    assert by_day[date(2020, 1, 1)] < by_day[date(2020, 1, 2)] / 10  # New Year's Day
    assert day_weight(date(2019, 12, 14)) < day_weight(date(2019, 12, 13))  # a Saturday


def test_the_same_seed_gives_the_same_run() -> None:
    a = list(TrafficModel(seed_2020(), seed=7).documents(500))
    b = list(TrafficModel(seed_2020(), seed=7).documents(500))
    c = list(TrafficModel(seed_2020(), seed=8).documents(500))
    assert a == b and a != c
    model = TrafficModel(seed_2020(), seed=7)
    answers = [model.statuses(f"doc-{i}", "000.00.00.H01") for i in range(200)]
    assert answers == [model.statuses(f"doc-{i}", "000.00.00.H01") for i in range(200)]
    assert {"02"} < {code for codes in answers for code in codes}


def test_the_mix() -> None:
    documents = list(TrafficModel(seed_2020(), seed=3, attachment_kb=20).documents(10_000))
    fan_out = Counter(len(d.recipients) for d in documents)
    assert fan_out[1] / len(documents) > 0.6  # mostly one recipient
    # … and about 3.6 receipts per document sent, the axis's published ratio.
    receipts = sum(len(d.recipients) for d in documents) / len(documents)
    assert 3.3 < receipts < 3.9, receipts
    assert max(fan_out) == 63 or max(fan_out) == 62  # a few broadcasts to every province
    priorities = Counter(d.priority for d in documents)
    assert priorities[0] > priorities[1] > priorities[2] > priorities[3] > 0
    sizes = sorted(d.attachment_bytes for d in documents)
    median = sizes[len(sizes) // 2]
    assert 15 * 1024 < median < 25 * 1024  # --attachment-kb sets the median
    assert sizes[-1] > 4 * median  # with a long tail
    senders = Counter(d.sender for d in documents)
    assert senders.most_common(1)[0][0] == "000.00.00.G22"


def test_about_one_document_in_a_hundred_is_updated() -> None:
    documents = list(TrafficModel(seed_2020(), seed=4).documents(20_000))
    updated = sum(d.updated for d in documents)
    assert 150 < updated < 250
    # Deciding updates draws nothing from the plan: the documents are as they were.
    again = list(TrafficModel(seed_2020(), seed=4).documents(20_000))
    assert [d.updated for d in again] == [d.updated for d in documents]


def test_dialects_are_dealt_by_weight_and_each_is_written() -> None:
    agencies = seed_2020()
    mix = {"standard": 2.0, "vnpt": 1.0, "gateway": 1.0, "dotnet": 1.0}
    dealt = dialects_of(agencies, mix, seed=1)
    assert set(dealt) == {a.organ_id for a in agencies}
    counts = Counter(dealt.values())
    assert counts == {"standard": 38, "vnpt": 19, "gateway": 19, "dotnet": 19}
    assert dialects_of(agencies, mix, seed=1) == dealt  # the same seed, the same software
    assert dialects_of(agencies, mix, seed=2) != dealt
    few = dialects_of(agencies[:4], {"standard": 10.0, "vnpt": 0.1, "dotnet": 0.1}, seed=1)
    assert sorted(Counter(few.values())) == ["dotnet", "standard", "vnpt"]  # each at least once


def test_the_published_figure_is_documents_sent_plus_received() -> None:
    from nodes.sim.traffic import PUBLISHED_DOCUMENTS, documents_for

    assert documents_for(PUBLISHED_DOCUMENTS) == 273_913  # and 986,087 received
    assert documents_for(4_600) == 1_000


def test_answers_take_office_hours() -> None:
    """A recipient answers within its office hours (08:00-17:00 on working days: Monday to
    Friday, not a public holiday): what a day's end leaves of the time an answer takes
    carries to the next working morning."""
    friday = datetime(2020, 1, 10, 16, 0, tzinfo=VIETNAM)
    assert after_office_hours(friday, 0.5) == friday + timedelta(minutes=30)
    # 1 hour to closing on Friday, 2 more from Monday's opening.
    assert after_office_hours(friday, 3) == datetime(2020, 1, 13, 10, 0, tzinfo=VIETNAM)
    # Read at night or on a Sunday: the clock starts at the next opening.
    night = datetime(2020, 1, 14, 22, 30, tzinfo=VIETNAM)
    assert after_office_hours(night, 1) == datetime(2020, 1, 15, 9, 0, tzinfo=VIETNAM)
    sunday = datetime(2020, 1, 12, 7, 0, tzinfo=VIETNAM)
    assert after_office_hours(sunday, 0) == datetime(2020, 1, 13, 8, 0, tzinfo=VIETNAM)
    # Five working days of nine hours: a week later, to the minute.
    monday = datetime(2020, 1, 6, 9, 0, tzinfo=VIETNAM)
    assert after_office_hours(monday, 45) == datetime(2020, 1, 13, 9, 0, tzinfo=VIETNAM)
    # Offices close for New Year's Day and for Tết (23-29 January 2020): what the day
    # before leaves waits for the next working morning.
    new_years_eve = datetime(2019, 12, 31, 16, 30, tzinfo=VIETNAM)
    assert after_office_hours(new_years_eve, 1) == datetime(2020, 1, 2, 8, 30, tzinfo=VIETNAM)
    before_tet = datetime(2020, 1, 22, 16, 0, tzinfo=VIETNAM)
    assert after_office_hours(before_tet, 2) == datetime(2020, 1, 30, 9, 0, tzinfo=VIETNAM)
    assert not working_day(date(2020, 1, 27)) and working_day(date(2020, 1, 30))


def test_each_answer_is_drawn_within_its_hours_and_again_the_same() -> None:
    model = TrafficModel(seed_2020(), seed=2020)
    read = datetime(2020, 1, 6, 9, 0, tzinfo=VIETNAM)
    for n in range(200):
        document = f"000.00.00.G22,2020/01/06,{n}/SIM"
        for code, (fewest, most) in ANSWER_HOURS.items():
            at = model.answered_at(document, "000.00.00.H26", code, read)
            assert after_office_hours(read, fewest) <= at <= after_office_hours(read, most)
            assert at == model.answered_at(document, "000.00.00.H26", code, read)
