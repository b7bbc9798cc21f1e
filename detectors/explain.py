"""Explanations a person understands without the code, in Chinese and English.

Each says what was observed, what was expected, for which period, and compared to what
(the enterprise's own history or its peers).

>>> from datetime import date
>>> text = utility_drop([("electricity", 120.0, 2400.0, date(2024, 5, 6), date(2024, 5, 8), 3)])
>>> text["zh"]
'2024-05-06 至 2024-05-08 连续 3 个工作日日均用电量 120 kWh，仅为自身近期正常水平 2,400 kWh 的 5%（低于 30% 即疑似停产）。'
>>> text["en"]
'Electricity use averaged 120 kWh a day on 3 working days from 2024-05-06 to 2024-05-08, 5% of its own recent normal level of 2,400 kWh (below 30% suggests a halt).'
"""

from __future__ import annotations

from datetime import date

ZH_UTILITY = {"electricity": "用电量", "water": "用水量", "gas": "用气量"}
UNIT = {"electricity": "kWh", "water": "m³", "gas": "m³"}
ZH_LEVEL = {"industry_town": "同镇街同行业", "industry": "同行业", "section": "同门类行业", "all": "全市"}
EN_LEVEL = {"industry_town": "same industry in the same town", "industry": "same industry",
            "section": "same industry section", "all": "all enterprises"}


def _n(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:,.1f}" if abs(x) >= 1 else f"{x:.2g}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def utility_drop(items, threshold: float = 0.30) -> dict:
    """``items``: (utility, observed per day, expected per day, first day, last day, working days)."""
    zh, en = [], []
    for utility, observed, expected, first, last, days in items:
        u, ratio = UNIT[utility], (observed / expected if expected else 0.0)
        zh.append(f"{first} 至 {last} 连续 {days} 个工作日日均{ZH_UTILITY[utility]} {_n(observed)} {u}，"
                  f"仅为自身近期正常水平 {_n(expected)} {u} 的 {_pct(ratio)}")
        en.append(f"{utility.capitalize()} use averaged {_n(observed)} {u} a day on {days} working days "
                  f"from {first} to {last}, {_pct(ratio)} of its own recent normal level of {_n(expected)} {u}")
    return {"zh": "；".join(zh) + f"（低于 {_pct(threshold)} 即疑似停产）。",
            "en": "; ".join(en) + f" (below {_pct(threshold)} suggests a halt)."}


def utility_spike(items, threshold: float = 3.0) -> dict:
    """``items``: (utility, observed per day, expected per day, first day, last day)."""
    zh, en = [], []
    for utility, observed, expected, first, last in items:
        u, ratio = UNIT[utility], (observed / expected if expected else 0.0)
        zh.append(f"{first} 至 {last} 日均{ZH_UTILITY[utility]} {_n(observed)} {u}，"
                  f"是自身近期正常水平 {_n(expected)} {u} 的 {ratio:.1f} 倍")
        en.append(f"{utility.capitalize()} use averaged {_n(observed)} {u} a day from {first} to {last}, "
                  f"{ratio:.1f} times its own recent normal level of {_n(expected)} {u}")
    return {"zh": "；".join(zh) + f"（超过 {threshold:g} 倍即为异常激增）。",
            "en": "; ".join(en) + f" (above {threshold:g} times is abnormal)."}


def dormant_entity(since: date, until: date, months: int) -> dict:
    return {
        "zh": f"该企业登记状态为存续且成立已满 {months} 个月，但自 {since} 至 {until} 无任何用电、用水、用气，"
              f"无申报销售额，也无参保职工，疑似空壳企业。",
        "en": f"Registered as active and at least {months} months old, yet from {since} to {until} it used no "
              f"electricity, water or gas, declared no sales and insured no staff: a suspected shell company.",
    }


def tax_zero_streak(first: str, last: str, months: int, operating: bool) -> dict:
    zh = f"{first} 至 {last} 连续 {months} 个月零申报（销售额和税款均为 0），而该企业成立已超过 6 个月"
    en = f"Zero tax returns (no sales, no tax) for {months} consecutive months from {first} to {last} by an enterprise older than 6 months"
    if operating:
        zh += "；同期表计显示仍在正常用能生产，疑似隐匿收入。"
        en += "; its meters show it operating over the same months, suggesting concealed income."
    else:
        zh += "。"
        en += "."
    return {"zh": zh, "en": en}


def tax_sales_drop(period: str, sales: float, trailing: float, last_year: float | None,
                   peer_factor: float | None, ratio: float = 0.5) -> dict:
    zh = f"{period} 申报销售额 {_n(sales)} 元，低于前 3 个月中位数 {_n(trailing)} 元的 {_pct(ratio)}"
    en = f"Declared sales of {_n(sales)} CNY for {period} are below {_pct(ratio)} of the median of the 3 previous months ({_n(trailing)} CNY)"
    if last_year is not None:
        zh += f"，也低于上年同月 {_n(last_year)} 元的 {_pct(ratio)}"
        en += f" and below {_pct(ratio)} of the same month last year ({_n(last_year)} CNY)"
    if peer_factor is not None:
        zh += f"（已按同行业同期季节变化 {_pct(peer_factor)} 调整）"
        en += f" (allowing for the peers' seasonal change to {_pct(peer_factor)})"
    return {"zh": zh + "。", "en": en + "."}


def sales_energy_mismatch(period: str, sales: float, kwh: float, peer_per_kwh: float | None,
                          level: str | None, high: bool) -> dict:
    if peer_per_kwh is None:
        return {
            "zh": f"{period} 申报销售额 {_n(sales)} 元，但当月用电量仅 {_n(kwh)} kWh，几乎没有用电，疑似虚开发票。",
            "en": f"Declared sales of {_n(sales)} CNY for {period} with only {_n(kwh)} kWh of electricity that month "
                  f"(next to none): suspected false invoicing.",
        }
    own = sales / kwh if kwh else 0.0
    zh_why, en_why = ("远高于", "far above") if high else ("远低于", "far below")
    zh_sus, en_sus = ("疑似虚开发票", "suspected false invoicing") if high else ("疑似少报收入", "suspected under-reporting")
    if level == "own":   # too few peers in its industry: compared with its own recent months
        return {
            "zh": f"{period} 每千瓦时用电对应销售额 {_n(own)} 元（销售额 {_n(sales)} 元 / 用电 {_n(kwh)} kWh），"
                  f"{zh_why}本企业近几个月的中位水平 {_n(peer_per_kwh)} 元，{zh_sus}。",
            "en": f"Declared sales per kWh for {period} were {_n(own)} CNY ({_n(sales)} CNY over {_n(kwh)} kWh), "
                  f"{en_why} its own median of recent months of {_n(peer_per_kwh)} CNY: {en_sus}.",
        }
    return {
        "zh": f"{period} 每千瓦时用电对应销售额 {_n(own)} 元（销售额 {_n(sales)} 元 / 用电 {_n(kwh)} kWh），"
              f"{zh_why}{ZH_LEVEL[level]}企业的中位水平 {_n(peer_per_kwh)} 元，{zh_sus}。",
        "en": f"Declared sales per kWh for {period} were {_n(own)} CNY ({_n(sales)} CNY over {_n(kwh)} kWh), "
              f"{en_why} the median of peers ({EN_LEVEL[level]}) of {_n(peer_per_kwh)} CNY: {en_sus}.",
    }


def headcount_drop(period: str, headcount: int, before: int, before_period: str) -> dict:
    drop = 1 - headcount / before if before else 0.0
    return {
        "zh": f"{period} 参保人数 {headcount} 人，比 {before_period} 的 {before} 人减少 {before - headcount} 人"
              f"（{_pct(drop)}），疑似大规模裁员。",
        "en": f"Insured headcount fell to {headcount} in {period} from {before} in {before_period} "
              f"({before - headcount} people, {_pct(drop)} fewer): suspected mass lay-offs.",
    }


def complaint_burst(first: date, last: date, count: int, expected: float, from_peers: bool) -> dict:
    zh_base = "同类企业的投诉水平" if from_peers else "自身过去 90 天的投诉频率"
    en_base = "the complaint rate of similar enterprises" if from_peers else "its own rate over the previous 90 days"
    return {
        "zh": f"{first} 至 {last} 的 7 天内收到 {count} 件投诉，按{zh_base}预计约 {_n(expected)} 件，投诉异常集中。",
        "en": f"{count} complaints in the 7 days from {first} to {last}, where about {_n(expected)} were expected "
              f"from {en_base}: a burst of complaints.",
    }
