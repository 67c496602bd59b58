"""Fixed vocabularies of the simulated world: scenes, channel codes, messages, menu keys, articles, tags."""

from __future__ import annotations

__all__ = [
    "ARTICLES",
    "CHANNELS",
    "CHANNEL_WEIGHTS",
    "MENU_KEYS",
    "MESSAGES",
    "PHONE_PREFIXES",
    "SCENES",
    "TAGS",
    "TEMPLATES",
]

# subscribe_scene values as WeChat documents them (user/info), with the share of non-referred followers.
SCENES: tuple[tuple[str, float], ...] = (
    ("ADD_SCENE_SEARCH", 0.25),
    ("ADD_SCENE_QR_CODE", 0.33),
    ("ADD_SCENE_PROFILE_CARD", 0.10),
    ("ADD_SCENE_PROFILE_LINK", 0.10),
    ("ADD_SCENE_ACCOUNT_MIGRATION", 0.04),
    ("ADD_SCENE_PROFILE_ITEM", 0.05),
    ("ADD_SCENE_WECHAT_ADVERTISEMENT", 0.05),
    ("ADD_SCENE_PAID", 0.02),
    ("ADD_SCENE_REPRINT", 0.02),
    ("ADD_SCENE_LIVESTREAM", 0.01),
    ("ADD_SCENE_CHANNELS", 0.01),
    ("ADD_SCENE_OTHERS", 0.02),
)

# The brand's channel QR codes: scene strings (permanent string codes) and a few numeric scene ids.
CHANNELS: tuple[str | int, ...] = (
    "poster_mall_sh",
    "poster_mall_bj",
    "store_bj_01",
    "store_sh_02",
    "store_gz_03",
    "kol_xiaohong",
    "kol_dayu",
    "event_expo_2026",
    "package_insert",
    1001,
    1002,
)
CHANNEL_WEIGHTS: tuple[float, ...] = (0.16, 0.12, 0.10, 0.10, 0.06, 0.14, 0.08, 0.09, 0.09, 0.03, 0.03)

MESSAGES: tuple[str, ...] = (
    "你好",
    "请问有优惠券吗？",
    "我的订单什么时候发货？",
    "怎么退货",
    "新品什么时候上市",
    "门店地址在哪里",
    "会员积分怎么查",
    "谢谢！",
    "客服在吗",
    "活动还有吗",
    "Hi, do you ship to Hong Kong?",
    "Where is my order?",
    "How do I join the membership?",
    "Is the store in Shanghai open on Sunday?",
    "Thanks!",
    "unsubscribe me from promotions",
)

MENU_KEYS: tuple[str, ...] = (
    "MENU_NEW_ARRIVALS",
    "MENU_MEMBER",
    "MENU_COUPON",
    "MENU_STORES",
    "MENU_SERVICE",
)

ARTICLES: tuple[tuple[str, str], ...] = (
    ("art_autumn_lookbook", "秋季新品 Lookbook"),
    ("art_member_day", "会员日：全场 8 折"),
    ("art_store_opening_sh", "上海新店开业"),
    ("art_care_guide", "Care guide: keep your knitwear soft"),
    ("art_kol_picks", "小红推荐：本周必买"),
    ("art_double11", "双十一预售攻略"),
    ("art_behind_the_scenes", "Behind the scenes at our Guangzhou studio"),
    ("art_recycle", "旧衣回收计划"),
)

TAGS: dict[int, str] = {100: "VIP", 101: "新客", 102: "KOL候选", 103: "上海"}

# Template messages predefined in the simulated account (template/get_all_private_template).
TEMPLATES: dict[str, tuple[str, str]] = {
    "TPL_EVENT": (
        "活动提醒",
        "{{first.DATA}}\n活动：{{keyword1.DATA}}\n时间：{{keyword2.DATA}}\n{{remark.DATA}}",
    ),
    "TPL_ORDER": (
        "订单状态更新",
        "{{first.DATA}}\n订单号：{{keyword1.DATA}}\n状态：{{keyword2.DATA}}\n{{remark.DATA}}",
    ),
    "TPL_POINTS": ("积分变动通知", "{{first.DATA}}\n积分变动：{{keyword1.DATA}}\n{{remark.DATA}}"),
}

PHONE_PREFIXES: tuple[str, ...] = ("138", "139", "135", "150", "159", "186", "187", "188", "177", "199")
