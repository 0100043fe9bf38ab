"""The agencies of the seed-2020 scenario: the Party Central Office, 31 ministries and
ministry-level agencies, and the people's committees of the 63 provinces, with plausible
OrganIds (Decision 20/2020/QĐ-TTg shape) and their real Vietnamese names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Tier(StrEnum):
    PARTY = "party"
    MINISTRY = "ministry"
    PROVINCE = "province"


@dataclass(frozen=True)
class SimAgency:
    organ_id: str
    name: str
    tier: Tier


PARTY_CENTRAL_OFFICE = SimAgency("000.00.00.A01", "Văn phòng Trung ương Đảng", Tier.PARTY)

# The order gives the codes G01…G31; the Government Office is G22, as in SPEC §1.
MINISTRIES = (
    "Bộ Quốc phòng",
    "Bộ Công an",
    "Bộ Ngoại giao",
    "Bộ Nội vụ",
    "Bộ Tư pháp",
    "Bộ Kế hoạch và Đầu tư",
    "Bộ Tài chính",
    "Bộ Công Thương",
    "Bộ Nông nghiệp và Phát triển nông thôn",
    "Bộ Giao thông vận tải",
    "Bộ Xây dựng",
    "Bộ Tài nguyên và Môi trường",
    "Bộ Thông tin và Truyền thông",
    "Bộ Lao động - Thương binh và Xã hội",
    "Bộ Văn hóa, Thể thao và Du lịch",
    "Bộ Khoa học và Công nghệ",
    "Bộ Giáo dục và Đào tạo",
    "Bộ Y tế",
    "Ủy ban Dân tộc",
    "Ngân hàng Nhà nước Việt Nam",
    "Thanh tra Chính phủ",
    "Văn phòng Chính phủ",
    "Đài Tiếng nói Việt Nam",
    "Đài Truyền hình Việt Nam",
    "Thông tấn xã Việt Nam",
    "Học viện Chính trị quốc gia Hồ Chí Minh",
    "Viện Hàn lâm Khoa học và Công nghệ Việt Nam",
    "Viện Hàn lâm Khoa học xã hội Việt Nam",
    "Bảo hiểm xã hội Việt Nam",
    "Ủy ban Quản lý vốn nhà nước tại doanh nghiệp",
    "Kiểm toán Nhà nước",
)

# The 63 provinces and centrally run cities (as of 2020), alphabetically: codes H01…H63.
PROVINCES = (
    ("tỉnh", "An Giang"), ("tỉnh", "Bà Rịa - Vũng Tàu"), ("tỉnh", "Bạc Liêu"),
    ("tỉnh", "Bắc Giang"), ("tỉnh", "Bắc Kạn"), ("tỉnh", "Bắc Ninh"), ("tỉnh", "Bến Tre"),
    ("tỉnh", "Bình Dương"), ("tỉnh", "Bình Định"), ("tỉnh", "Bình Phước"),
    ("tỉnh", "Bình Thuận"), ("tỉnh", "Cà Mau"), ("tỉnh", "Cao Bằng"), ("thành phố", "Cần Thơ"),
    ("thành phố", "Đà Nẵng"), ("tỉnh", "Đắk Lắk"), ("tỉnh", "Đắk Nông"), ("tỉnh", "Điện Biên"),
    ("tỉnh", "Đồng Nai"), ("tỉnh", "Đồng Tháp"), ("tỉnh", "Gia Lai"), ("tỉnh", "Hà Giang"),
    ("tỉnh", "Hà Nam"), ("thành phố", "Hà Nội"), ("tỉnh", "Hà Tĩnh"), ("tỉnh", "Hải Dương"),
    ("thành phố", "Hải Phòng"), ("tỉnh", "Hậu Giang"), ("tỉnh", "Hòa Bình"),
    ("thành phố", "Hồ Chí Minh"), ("tỉnh", "Hưng Yên"), ("tỉnh", "Khánh Hòa"),
    ("tỉnh", "Kiên Giang"), ("tỉnh", "Kon Tum"), ("tỉnh", "Lai Châu"), ("tỉnh", "Lạng Sơn"),
    ("tỉnh", "Lào Cai"), ("tỉnh", "Lâm Đồng"), ("tỉnh", "Long An"), ("tỉnh", "Nam Định"),
    ("tỉnh", "Nghệ An"), ("tỉnh", "Ninh Bình"), ("tỉnh", "Ninh Thuận"), ("tỉnh", "Phú Thọ"),
    ("tỉnh", "Phú Yên"), ("tỉnh", "Quảng Bình"), ("tỉnh", "Quảng Nam"), ("tỉnh", "Quảng Ngãi"),
    ("tỉnh", "Quảng Ninh"), ("tỉnh", "Quảng Trị"), ("tỉnh", "Sóc Trăng"), ("tỉnh", "Sơn La"),
    ("tỉnh", "Tây Ninh"), ("tỉnh", "Thái Bình"), ("tỉnh", "Thái Nguyên"), ("tỉnh", "Thanh Hóa"),
    ("tỉnh", "Thừa Thiên Huế"), ("tỉnh", "Tiền Giang"), ("tỉnh", "Trà Vinh"),
    ("tỉnh", "Tuyên Quang"), ("tỉnh", "Vĩnh Long"), ("tỉnh", "Vĩnh Phúc"), ("tỉnh", "Yên Bái"),
)  # fmt: skip


def seed_2020() -> tuple[SimAgency, ...]:
    """The 95 agencies connected in the launch window (9 Dec 2019 – 10 Feb 2020)."""
    ministries = tuple(
        SimAgency(f"000.00.00.G{i:02d}", name, Tier.MINISTRY)
        for i, name in enumerate(MINISTRIES, start=1)
    )
    provinces = tuple(
        SimAgency(f"000.00.00.H{i:02d}", f"UBND {kind} {name}", Tier.PROVINCE)
        for i, (kind, name) in enumerate(PROVINCES, start=1)
    )
    return (PARTY_CENTRAL_OFFICE, *ministries, *provinces)


def first(n: int) -> tuple[SimAgency, ...]:
    """A smaller country for quick runs: the Party Central Office, then ministries and
    provinces alternating, ``n`` in all (at least 2)."""
    everyone = seed_2020()
    ministries = [a for a in everyone if a.tier is Tier.MINISTRY]
    provinces = [a for a in everyone if a.tier is Tier.PROVINCE]
    mixed = [PARTY_CENTRAL_OFFICE]
    for pair in zip(ministries, provinces, strict=False):
        mixed.extend(pair)
    mixed.extend(provinces[len(ministries) :])
    return tuple(mixed[: max(2, min(n, len(mixed)))])
