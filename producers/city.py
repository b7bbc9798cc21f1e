"""The enterprise population of a synthetic Dongguan: who the simulator's events are about.

``build_city(n, seed, start)`` draws ``n`` enterprises.  Each one is drawn from its own
seeded generator (``(seed, index)``), so enterprise ``i`` is the same whatever ``n`` is and a
city of 100,000 costs a few seconds and a few tens of megabytes.

An enterprise has a valid USCC (region 441900, Dongguan), a Chinese name, one of the 33
towns and subdistricts, a GB/T 4754-2017 industry (section letter + division) drawn in
proportions close to Dongguan's (manufacturing dominant, electronics first), a size
class with a headcount, an establishment date, a registry status, and the levels its
normal operation runs at: working-day electricity and water, sales per kWh (stable within
an industry, so a mismatch stands out), wage base, tax rate, complaint rate, the weekly
and holiday pattern of its regime (factory, office, shop, logistics) and, for a factory,
its own Spring Festival shutdown: ``staggered_shutdown`` gives its dates for a year (it
begins 5-20 days before the official holiday and ends 1-4 weeks after it, by default; each
factory keeps its own habit and varies it by a few days from year to year).  The fields
``spring_lead`` and ``spring_days`` are the older, narrower shutdown (1-7 days before the
holiday, 14-28 days long) that ``SimulationConfig(spring_shutdown="window")`` still uses.

>>> from streams.uscc import is_valid_uscc
>>> city = build_city(3, seed=7, start=date(2024, 1, 1))
>>> [is_valid_uscc(e.uscc) for e in city]
[True, True, True]
>>> len(TOWNS), TOWNS[0], TOWNS[-1]
(33, '莞城街道', '松山湖')
>>> build_city(3, seed=7, start=date(2024, 1, 1))[2] == city[2]
True
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate

from streams.uscc import CHARSET, make_uscc

__all__ = ["TOWNS", "INDUSTRIES", "SIZES", "Enterprise", "Industry", "build_city", "enterprise",
           "staggered_shutdown"]

# The 4 subdistricts, 28 towns and the Songshan Lake high-tech zone (33 town-level units).
TOWNS = (
    "莞城街道", "南城街道", "东城街道", "万江街道",
    "石碣镇", "石龙镇", "茶山镇", "石排镇", "企石镇", "横沥镇", "桥头镇", "谢岗镇",
    "东坑镇", "常平镇", "寮步镇", "樟木头镇", "大朗镇", "黄江镇", "清溪镇", "塘厦镇",
    "凤岗镇", "大岭山镇", "长安镇", "虎门镇", "厚街镇", "沙田镇", "道滘镇", "洪梅镇",
    "麻涌镇", "望牛墩镇", "中堂镇", "高埗镇",
    "松山湖",
)
# Rough weights: the industrial towns of the south and east hold most enterprises.
_TOWN_WEIGHTS = (
    3, 5, 5, 3,
    2, 2, 2, 2, 1.5, 2, 2, 1.5,
    1.5, 4, 4, 2, 4, 2.5, 3.5, 5,
    4, 3, 8, 7, 5, 1.5, 1, 0.5,
    1, 0.5, 1.5, 1.5,
    2.5,
)
REGIONS = "441900"  # Dongguan has no districts: every town shares the city's region code


@dataclass(frozen=True)
class Industry:
    """A GB/T 4754-2017 division as the simulator sees it.

    ``kwh_per_head`` is working-day electricity per employee, ``sales_per_kwh`` declared
    sales (CNY) per kWh, ``water_per_head`` m3 per employee per working day, ``regime`` the
    weekly/holiday pattern, ``shape`` the hourly load profile, ``complaints`` the base rate
    of consumer complaints per enterprise-day, ``words`` what the name says it makes.
    """

    code: str
    label: str
    weight: float
    kwh_per_head: float
    sales_per_kwh: float
    water_per_head: float
    regime: str
    shape: str
    complaints: float
    words: tuple[str, ...]


INDUSTRIES = (
    # manufacturing (C): about 55% of monitored enterprises, electronics first
    Industry("C39", "计算机、通信和其他电子设备制造业", 10.0, 38, 42, 0.12, "factory", "two_shift", 0.0008, ("电子科技", "电子", "通讯科技", "光电科技")),
    Industry("C38", "电气机械和器材制造业", 5.0, 35, 38, 0.10, "factory", "two_shift", 0.0008, ("电器", "电气", "照明科技", "电池")),
    Industry("C33", "金属制品业", 6.0, 45, 22, 0.15, "factory", "two_shift", 0.0005, ("五金制品", "金属制品", "精密五金", "模具")),
    Industry("C34", "通用设备制造业", 3.5, 40, 28, 0.10, "factory", "two_shift", 0.0005, ("机械设备", "精密机械", "自动化设备")),
    Industry("C35", "专用设备制造业", 3.0, 36, 32, 0.10, "factory", "two_shift", 0.0005, ("智能装备", "机械", "设备科技")),
    Industry("C29", "橡胶和塑料制品业", 5.0, 55, 16, 0.15, "factory", "continuous", 0.0005, ("塑胶制品", "塑料制品", "硅胶制品")),
    Industry("C18", "纺织服装、服饰业", 3.5, 18, 40, 0.10, "factory", "two_shift", 0.0010, ("服饰", "制衣", "时装")),
    Industry("C19", "皮革、毛皮、羽毛及其制品和制鞋业", 2.5, 20, 35, 0.10, "factory", "two_shift", 0.0010, ("鞋业", "皮具", "鞋材")),
    Industry("C24", "文教、工美、体育和娱乐用品制造业", 3.0, 25, 30, 0.10, "factory", "two_shift", 0.0012, ("玩具", "工艺品", "体育用品")),
    Industry("C21", "家具制造业", 2.5, 30, 25, 0.10, "factory", "two_shift", 0.0015, ("家具", "家居", "木业")),
    Industry("C22", "造纸和纸制品业", 1.5, 70, 10, 0.60, "factory", "continuous", 0.0004, ("纸业", "包装制品", "纸品")),
    Industry("C23", "印刷和记录媒介复制业", 1.5, 40, 20, 0.15, "factory", "two_shift", 0.0004, ("印刷", "彩印", "包装印刷")),
    Industry("C26", "化学原料和化学制品制造业", 1.5, 80, 14, 0.50, "factory", "continuous", 0.0004, ("化工", "新材料", "涂料")),
    Industry("C30", "非金属矿物制品业", 1.5, 90, 9, 0.30, "factory", "continuous", 0.0003, ("建材", "玻璃制品", "陶瓷")),
    Industry("C32", "有色金属冶炼和压延加工业", 1.0, 110, 12, 0.30, "factory", "continuous", 0.0003, ("铝业", "铜业", "金属材料")),
    Industry("C17", "纺织业", 1.0, 60, 14, 0.80, "factory", "continuous", 0.0004, ("纺织", "织造", "染整")),
    Industry("C14", "食品制造业", 1.0, 40, 26, 0.50, "factory", "two_shift", 0.0040, ("食品", "饼业", "食品科技")),
    Industry("C40", "仪器仪表制造业", 1.0, 30, 45, 0.08, "factory", "two_shift", 0.0004, ("仪器", "测控技术", "仪表")),
    # construction (E)
    Industry("E48", "土木工程建筑业", 2.0, 12, 90, 0.20, "logistics", "office", 0.0010, ("建设工程", "市政工程", "建筑工程")),
    Industry("E50", "建筑装饰、装修和其他建筑业", 2.0, 8, 110, 0.05, "logistics", "office", 0.0030, ("装饰工程", "装修工程", "幕墙")),
    # wholesale and retail (F)
    Industry("F51", "批发业", 8.0, 10, 260, 0.03, "logistics", "office", 0.0010, ("贸易", "进出口", "供应链", "商贸")),
    Industry("F52", "零售业", 6.0, 25, 55, 0.06, "shop", "retail", 0.0080, ("百货", "超市", "商行", "便利店")),
    # transport and logistics (G)
    Industry("G54", "道路运输业", 2.0, 9, 80, 0.05, "logistics", "continuous", 0.0015, ("物流", "运输", "货运")),
    Industry("G59", "装卸搬运和仓储业", 2.0, 22, 45, 0.05, "logistics", "continuous", 0.0008, ("仓储", "物流", "供应链管理")),
    # accommodation and catering (H)
    Industry("H61", "住宿业", 1.5, 45, 30, 0.60, "shop", "continuous", 0.0080, ("酒店", "宾馆", "酒店管理")),
    Industry("H62", "餐饮业", 4.0, 40, 35, 0.40, "shop", "catering", 0.0120, ("餐饮", "饮食", "餐饮管理", "食府")),
    # IT, real estate, business services, R&D (I, K, L, M)
    Industry("I65", "软件和信息技术服务业", 2.5, 9, 150, 0.05, "office", "office", 0.0008, ("信息技术", "软件", "网络科技")),
    Industry("K70", "房地产业", 1.5, 12, 200, 0.06, "office", "office", 0.0060, ("房地产开发", "物业管理", "置业")),
    Industry("L72", "商务服务业", 5.0, 7, 160, 0.04, "office", "office", 0.0015, ("企业管理", "商务咨询", "人力资源", "广告")),
    Industry("L71", "租赁业", 1.0, 8, 150, 0.04, "office", "office", 0.0020, ("租赁", "设备租赁")),
    Industry("M73", "研究和试验发展", 1.0, 20, 60, 0.08, "office", "office", 0.0003, ("研究院", "检测技术", "生物科技")),
    Industry("M75", "科技推广和应用服务业", 1.5, 10, 120, 0.05, "office", "office", 0.0005, ("科技", "技术服务", "新能源科技")),
    # resident services, culture (O, R)
    Industry("O80", "居民服务业", 1.5, 15, 60, 0.20, "shop", "retail", 0.0100, ("美容美发", "家政服务", "洗涤服务")),
    Industry("O81", "机动车、电子产品和日用产品修理业", 1.0, 15, 50, 0.05, "shop", "retail", 0.0060, ("汽车维修", "电器维修", "汽车服务")),
    Industry("R89", "娱乐业", 0.5, 40, 40, 0.10, "shop", "catering", 0.0080, ("娱乐", "文化传播", "KTV")),
)
_INDUSTRY_CUM = tuple(accumulate(i.weight for i in INDUSTRIES))
_BY_CODE = {i.code: i for i in INDUSTRIES}

# size class: (share, headcount low, headcount high, registered capital low/high in CNY)
SIZES = {
    "micro": (0.52, 2, 9, 1e5, 1e6),
    "small": (0.36, 10, 99, 5e5, 1e7),
    "medium": (0.10, 100, 999, 5e6, 1e8),
    "large": (0.02, 1000, 6000, 5e7, 2e9),
}
_SIZE_NAMES = tuple(SIZES)
_SIZE_CUM = tuple(accumulate(s[0] for s in SIZES.values()))

# regime: (Saturday, Sunday, public holiday, Spring Festival holiday) level relative to a
# working day, as ranges an enterprise draws its own value from
REGIMES = {
    "factory": ((0.55, 0.95), (0.20, 0.50), (0.15, 0.40), (0.05, 0.15)),
    "office": ((0.12, 0.30), (0.10, 0.20), (0.10, 0.20), (0.08, 0.15)),
    "shop": ((1.00, 1.25), (1.00, 1.30), (0.90, 1.20), (0.40, 0.70)),
    "logistics": ((0.50, 0.85), (0.25, 0.50), (0.20, 0.40), (0.10, 0.25)),
}

_BRAND = "恒鑫华达金宏泰盛兴隆昌富源丰瑞祥瑞佳利联创新科美嘉汇德和顺永康伟业辉煌腾飞凯旋星辰海天宇晨光明旭东方南北" \
         "广粤莞信诚大力精工汇通中天智成锦绣龙凤麒麟卓越雅丽铭雄润泽骏豪博远万福"
_STATUSES = ("active", "suspended", "deregistered", "revoked")


@dataclass(frozen=True)
class Enterprise:
    """One enterprise: master data and the levels its normal operation runs at."""

    index: int
    uscc: str
    name: str
    industry: str
    town: str
    size: str
    headcount: int
    registered_capital_cny: float
    established_on: date
    status: str
    key_enterprise: bool
    regime: str
    shape: str
    kwh_per_day: float        # electricity on an ordinary working day
    water_per_day: float      # m3 on an ordinary working day
    sales_per_kwh: float      # declared sales (CNY) per kWh, this enterprise's own ratio
    tax_rate: float           # tax paid / declared sales
    wage_base: float          # monthly social-insurance contribution per insured person
    complaint_rate: float     # complaints per day
    saturday: float
    sunday: float
    holiday: float
    spring_level: float       # level during its own Spring Festival shutdown / holiday
    spring_lead: int          # "window" shutdown: starts this many days before the official holiday
    spring_days: int          # and lasts this many days (factories only)
    growth: float             # yearly trend of its levels
    noise: float              # sd of the daily log-noise

    @property
    def section(self) -> str:
        return self.industry[0]

    def registry_fields(self) -> dict:
        """The SPEC §2 registry fields (without the envelope)."""
        return {"name": self.name, "industry": self.industry, "town": self.town,
                "registered_capital_cny": self.registered_capital_cny,
                "established_on": self.established_on.isoformat(), "status": self.status,
                "key_enterprise": self.key_enterprise}


def industry(code: str) -> Industry:
    """The simulator's parameters of a GB/T 4754 division code such as ``C39``."""
    return _BY_CODE[code]


def build_city(n: int = 2000, seed: int = 7, start: date = date(2024, 1, 1)) -> list[Enterprise]:
    """``n`` enterprises, each drawn from its own ``(seed, index)`` generator."""
    if n < 1:
        raise ValueError("a city needs at least one enterprise")
    return [enterprise(seed, i, start) for i in range(n)]


def enterprise(seed: int, index: int, start: date) -> Enterprise:
    """Enterprise ``index`` of the city with ``seed`` (as of ``start``)."""
    rng = random.Random(seed * 1_000_003 + index * 7_919 + 17)
    ind = INDUSTRIES[bisect(_INDUSTRY_CUM, rng.random() * _INDUSTRY_CUM[-1])]
    town = rng.choices(TOWNS, weights=_TOWN_WEIGHTS)[0]
    size = _SIZE_NAMES[min(bisect(_SIZE_CUM, rng.random() * _SIZE_CUM[-1]), len(_SIZE_NAMES) - 1)]
    _, lo, hi, cap_lo, cap_hi = SIZES[size]
    # headcounts are skewed towards the low end of their class
    headcount = int(round(lo * (hi / lo) ** (rng.random() ** 1.6)))
    capital = round(cap_lo * (cap_hi / cap_lo) ** rng.random(), -4)
    age_days = int(min(rng.expovariate(1 / (7.5 * 365)), 38 * 365)) + 30
    established = start - timedelta(days=age_days)
    status = "active" if rng.random() < 0.975 else rng.choice(_STATUSES[1:])
    sat, sun, hol, spring = (rng.uniform(*r) for r in REGIMES[ind.regime])
    factory = ind.regime == "factory"
    kwh = headcount * ind.kwh_per_head * rng.lognormvariate(0, 0.3)
    modern = established.year >= 2016
    return Enterprise(
        index=index,
        uscc=_uscc(seed, index, modern, individual=size == "micro" and ind.regime == "shop" and rng.random() < 0.4),
        name=_name(rng, ind, size, town),
        industry=ind.code,
        town=town,
        size=size,
        headcount=headcount,
        registered_capital_cny=float(capital),
        established_on=established,
        status=status,
        key_enterprise=ind.code[0] == "C" and (size == "large" or (size == "medium" and rng.random() < 0.3)),
        regime=ind.regime,
        shape=ind.shape,
        kwh_per_day=round(kwh, 2),
        water_per_day=round(headcount * ind.water_per_head * rng.lognormvariate(0, 0.3) + 0.2, 3),
        # within an industry the ratio varies little (truncated at +-2 sd): a mismatch stands out
        sales_per_kwh=ind.sales_per_kwh * _truncated_lognormal(rng, 0.15),
        tax_rate=rng.uniform(0.01, 0.04),
        wage_base=rng.uniform(900, 2600) * (1.3 if size in ("medium", "large") else 1.0),
        complaint_rate=ind.complaints * {"micro": 0.5, "small": 1.0, "medium": 3.0, "large": 8.0}[size],
        saturday=sat, sunday=sun, holiday=hol, spring_level=spring,
        spring_lead=rng.randint(1, 7) if factory else 0,
        spring_days=rng.randint(14, 28) if factory else 0,
        growth=rng.gauss(0.03, 0.06),
        noise=rng.uniform(0.05, 0.12),
    )


def staggered_shutdown(seed: int, index: int, holiday: tuple[date, date], lead_days: tuple[int, int] = (5, 20),
                       tail_days: tuple[int, int] = (7, 28), wobble: int = 3) -> tuple[date, date]:
    """First and last day of factory ``index``'s Spring Festival shutdown around the official
    ``holiday`` (its first and last rest day): it stops ``lead`` days before the holiday and
    stays shut ``tail`` days after it, reopening the day after.

    Each factory has a habit (a lead and a tail drawn once from ``(seed, index)`` within the
    ranges) that it varies by up to ``wobble`` days a year (drawn from ``(seed, index, year)``),
    always staying within the ranges: its stop repeats around every festival, not exactly.

    >>> from datetime import date
    >>> holiday = (date(2024, 2, 10), date(2024, 2, 17))
    >>> first, last = staggered_shutdown(7, 3, holiday)
    >>> 5 <= (holiday[0] - first).days <= 20 and 7 <= (last - holiday[1]).days <= 28
    True
    >>> staggered_shutdown(7, 3, holiday) == (first, last) != staggered_shutdown(7, 4, holiday)
    True
    """
    habit = random.Random(f"{seed}:{index}:spring")
    lead, tail = habit.randint(*lead_days), habit.randint(*tail_days)
    year = random.Random(f"{seed}:{index}:spring:{holiday[0].year}")
    lead = min(max(lead + year.randint(-wobble, wobble), lead_days[0]), lead_days[1])
    tail = min(max(tail + year.randint(-wobble, wobble), tail_days[0]), tail_days[1])
    return holiday[0] - timedelta(days=lead), holiday[1] + timedelta(days=tail)


def _truncated_lognormal(rng: random.Random, sd: float) -> float:
    return math.exp(max(-2 * sd, min(2 * sd, rng.gauss(0, sd))))


def _uscc(seed: int, index: int, modern: bool, individual: bool) -> str:
    """A unique, valid USCC: ``9`` (market regulator) + ``1`` enterprise / ``2`` individual
    business, region 441900, a 9-character organisation code with its GB 11714 check."""
    # a bijection of the index onto 0..31^6-1 (odd multiplier, coprime to 31), so codes differ
    space = 31 ** 6 if modern else 10 ** 7
    mult = 492_113 if modern else 3_918_173
    k = (index * mult + (seed % 1000) * 7_777) % space
    if modern:
        body = "MA"
        for _ in range(6):
            k, r = divmod(k, 31)
            body += CHARSET[r]
    else:
        body = f"{k + 30_000_000 * (1 + index % 2):08d}"
    org = body + _org_check(body)
    return make_uscc(("92" if individual else "91") + REGIONS + org)


def _org_check(body8: str) -> str:
    """The GB 11714 check character of an 8-character organisation code."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, weights))
    c9 = 11 - total % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def _name(rng: random.Random, ind: Industry, size: str, town: str) -> str:
    brand = rng.choice(_BRAND) + rng.choice(_BRAND)
    word = rng.choice(ind.words)
    if ind.regime == "shop" and size == "micro":
        place = town.removesuffix("街道").removesuffix("镇")
        return f"东莞市{place}{brand}{word}店"
    suffix = "股份有限公司" if size == "large" and rng.random() < 0.4 else "有限公司"
    return f"东莞市{brand}{word}{suffix}"
