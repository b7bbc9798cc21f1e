"""Every string the console shows, in Chinese (the default) and English.

>>> text("zh", "supervision")
'重点监管名单'
>>> text("en", "supervision")
'Supervision list'
>>> pick_language("en", None), pick_language(None, "fr"), pick_language(None, None)
('en', 'zh', 'zh')
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")
DEFAULT = "zh"

CATALOGUE: dict[str, dict[str, str]] = {
    "zh": {
        "title": "企业运行监测中心", "supervision": "重点监管名单", "inbox": "预警收件箱", "enterprise": "企业",
        "login": "登录", "logout": "退出", "user": "用户名", "password": "密码", "switch": "English",
        "login_failed": "用户名或密码错误", "too_many": "登录尝试过多，请稍后再试",
        "town": "镇街", "industry": "行业", "rule": "规则", "severity": "严重程度", "all": "全部",
        "filter": "筛选", "uscc": "统一社会信用代码", "name": "名称", "score": "风险分", "level": "风险等级",
        "rules": "触发规则", "updated": "更新时间", "count": "数量", "by_town": "各镇街数量",
        "none": "暂无", "detected": "发现时间", "window": "异常时段", "explanation": "说明", "evidence": "证据",
        "status": "状态", "case": "处置", "case_state": "处置状态", "open_case": "处置",
        "registry": "登记信息", "capital": "注册资本（元）", "established": "成立日期", "reg_status": "经营状态",
        "key_enterprise": "重点企业", "risk": "风险", "electricity": "日用电量 (kWh)", "water": "日用水量 (m³)",
        "series": "日用电、用水", "alerts": "预警", "cases": "处置记录", "monthly": "月度申报",
        "period": "所属期", "sales": "申报销售额（元）", "tax": "缴税（元）",
        "history": "处置历史", "actor": "操作人", "at": "时间", "action": "操作", "detail": "内容",
        "acknowledge": "确认接收", "assign": "指派", "note": "添加备注", "due": "设置期限", "resolve": "办结",
        "assignee": "指派给（镇街办或人员）", "note_text": "备注", "due_on": "期限", "outcome": "处置结论",
        "confirmed": "确认违规", "explained": "已说明（如季节性停产、搬迁）", "false_alarm": "误报",
        "new": "待处理", "acknowledged": "已接收", "resolved": "已办结",
        "read_only": "只读用户不能处置预警。", "go": "查看", "search_uscc": "按统一社会信用代码查找",
        "no_enterprise": "没有这家企业", "live": "每 {n} 秒自动刷新",
        "info": "提示", "warning": "警告", "critical": "严重",
        "utility_drop": "用量骤降", "utility_spike": "用量激增", "dormant_entity": "疑似空壳",
        "tax_zero_streak": "连续零申报", "tax_sales_drop": "销售额骤降", "sales_energy_mismatch": "产销能耗背离",
        "headcount_drop": "参保人数骤降", "complaint_burst": "投诉激增",
        "sort": "排序", "export": "导出 CSV（Excel 可打开）", "bulk_acknowledge": "批量确认接收所选预警", "select": "选择",
        "updated_at": "更新时间", "outcomes": "处置结论统计", "precision": "准确率（确认违规）",
        "real_share": "确有异常（违规或已说明）", "social": "社保参保", "headcount": "参保人数",
        "complaints": "每周投诉", "week": "周",
        "outcomes_help": "按规则统计已办结的处置结论：准确率 = 确认违规 / 已办结。",
        "expected": "预期", "band": "正常范围", "risk_history": "风险分变化",
        "mute": "静默该规则", "unmute": "取消静默", "muted": "已静默", "mutes": "已静默的规则", "until": "截止日期",
        "muted_hide": "隐藏", "muted_show": "显示", "muted_until": "{rule}已对该企业静默至 {until}。",
        "mute_help": "已说明的异常：在此日期前不再提示该企业的“{rule}”预警", "users": "用户管理", "role": "角色",
        "created": "创建时间", "change_role": "更改角色", "account": "账号", "reset_password": "重置密码",
        "new_user": "新建用户", "create": "创建", "save": "保存", "disable": "停用", "enable": "启用",
        "disabled": "已停用", "active": "正常", "viewer": "查看员", "analyst": "分析员", "admin": "管理员",
        "band_help": "预期水平与正常范围由用电、用水规则的基线算出：工作日低于范围下沿为“偏低”，高于上沿为“偏高”；节假日和学习期无预期。",
    },
    "en": {
        "title": "Enterprise monitoring centre", "supervision": "Supervision list", "inbox": "Alert inbox",
        "enterprise": "Enterprise", "login": "Log in", "logout": "Log out", "user": "User name",
        "password": "Password", "switch": "中文", "login_failed": "Wrong user name or password",
        "too_many": "Too many login attempts; try again later",
        "town": "Town", "industry": "Industry", "rule": "Rule", "severity": "Severity", "all": "All",
        "filter": "Filter", "uscc": "USCC", "name": "Name", "score": "Risk score", "level": "Risk level",
        "rules": "Rules", "updated": "Updated", "count": "Count", "by_town": "By town",
        "none": "None", "detected": "Detected", "window": "Window", "explanation": "Explanation",
        "evidence": "Evidence", "status": "Status", "case": "Case", "case_state": "Case state", "open_case": "Case",
        "registry": "Registry", "capital": "Registered capital (CNY)", "established": "Established",
        "reg_status": "Status", "key_enterprise": "Key enterprise", "risk": "Risk",
        "electricity": "Daily electricity (kWh)", "water": "Daily water (m³)", "series": "Daily electricity and water",
        "alerts": "Alerts", "cases": "Cases", "monthly": "Monthly returns", "period": "Period",
        "sales": "Declared sales (CNY)", "tax": "Tax paid (CNY)",
        "history": "Case history", "actor": "By", "at": "When", "action": "Action", "detail": "Detail",
        "acknowledge": "Acknowledge", "assign": "Assign", "note": "Add note", "due": "Set due date",
        "resolve": "Resolve", "assignee": "Assign to (town office or person)", "note_text": "Note",
        "due_on": "Due on", "outcome": "Outcome", "confirmed": "Confirmed violation",
        "explained": "Explained (e.g. seasonal stop, relocation)", "false_alarm": "False alarm",
        "new": "New", "acknowledged": "Acknowledged", "resolved": "Resolved",
        "read_only": "Viewers cannot change cases.", "go": "Go", "search_uscc": "Find by USCC",
        "no_enterprise": "No such enterprise", "live": "refreshes every {n} s",
        "info": "info", "warning": "warning", "critical": "critical",
        "utility_drop": "utility drop", "utility_spike": "utility spike", "dormant_entity": "dormant entity",
        "tax_zero_streak": "zero-return streak", "tax_sales_drop": "sales drop",
        "sales_energy_mismatch": "sales/energy mismatch", "headcount_drop": "headcount drop",
        "complaint_burst": "complaint burst",
        "sort": "Sort by", "export": "Export CSV (opens in Excel)", "bulk_acknowledge": "Acknowledge the selected alerts",
        "select": "select", "updated_at": "Updated", "outcomes": "Outcomes", "precision": "Precision (confirmed)",
        "real_share": "Real anomalies (confirmed or explained)", "social": "Social insurance",
        "headcount": "Insured headcount", "complaints": "Complaints by week", "week": "Week",
        "outcomes_help": "Resolved cases by rule and outcome: precision = confirmed / resolved.",
        "expected": "expected", "band": "normal band", "risk_history": "Risk score over time",
        "mute": "Mute this rule", "unmute": "Unmute", "muted": "muted", "mutes": "Muted rules", "until": "Until",
        "muted_hide": "hide", "muted_show": "show", "muted_until": "{rule} is muted for this enterprise until {until}.",
        "mute_help": "Explained: do not show this enterprise's {rule} alerts until", "users": "Users", "role": "Role",
        "created": "Created", "change_role": "Change role", "account": "Account", "reset_password": "Reset password",
        "new_user": "New user", "create": "Create", "save": "Save", "disable": "Disable", "enable": "Enable",
        "disabled": "disabled", "active": "active", "viewer": "viewer", "analyst": "analyst", "admin": "admin",
        "band_help": "The expected level and band come from the utility rules' baseline: a working day below the "
                     "band is low, a day above it high; holidays and the first weeks (learning) have none.",
    },
}


def text(lang: str, key: str, **values) -> str:
    """The string ``key`` in ``lang`` (the key itself when the catalogue lacks it)."""
    template = CATALOGUE.get(lang, CATALOGUE[DEFAULT]).get(key, key)
    return template.format(**values) if values else template


def pick_language(query: str | None, cookie: str | None) -> str:
    """The page's language: the ``lang`` query parameter, else the ``lang`` cookie, else Chinese."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    return DEFAULT
