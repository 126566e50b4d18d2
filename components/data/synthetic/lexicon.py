"""What the synthetic products are made of, in Chinese (the benchmark) and English (for machines
without a CJK font): the tables of the factorised crawl (see ``grammar.py`` for how they combine).

- 50 categories in 8 groups. Each has a noun, a drawn shape (no shape serves more than 3
  categories, so the image narrows the category without naming it), a unit for its spec, a tail
  from its group's tails, and 14 attribute heads: 6 shared by its whole group, 8 from its group's
  pool.
- Shared pools: 40 modifiers (one per column glyph: 8 shapes x 5 colours), 20 tails, 30 slogans,
  4 campaign themes, a stem per group for the banner, 12 colours and 4 finishes drawn on the
  product, 10 marker glyphs each with its phrase, the brand badge's suffixes by length class.
- Brands (300) are built from a table of brand-like syllables; product names from the 3,755
  characters of GB2312 level 1, drawn with a Zipf law, so the character vocabulary grows with the
  number of images like a real one. Both are fixed per language (seeded here, not by the dataset).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

LEXICON_SEED = 20261204  # the lexicon is the same for every dataset seed
N_BRANDS = 300
HEADS_SHARED = 6  # per group: heads every category of the group has
HEADS_OWN = 8  # per category: heads from its group's pool


@dataclass(frozen=True)
class Category:
    noun: str
    group: str
    shape: str
    unit: str  # the spec's unit
    numerals: tuple[str, ...]  # the spec's amounts
    tail: str
    heads: tuple[str, ...]


@dataclass(frozen=True)
class Marker:
    glyph: str
    rgb: tuple[int, int, int]
    phrase: str


@dataclass(frozen=True)
class Lexicon:
    lang: str
    groups: tuple[str, ...]
    categories: tuple[Category, ...]
    stems: dict[str, str]  # group -> the banner's stem
    themes: tuple[str, ...]  # campaign themes (NOISE: never drawn, never in the info)
    slogans: tuple[str, ...]  # free slogans (NOISE)
    modifiers: tuple[str, ...]  # one per column glyph: COLUMN_GLYPHS x GLYPH_COLOURS
    colours: tuple[tuple[str, tuple[int, int, int]], ...]  # name, the product's RGB
    finishes: tuple[str, ...]  # one per FINISHES drawing style
    markers: tuple[Marker, ...]
    brand_suffixes: tuple[str, str]  # the brand badge's suffix for length classes mid and long
    joins: tuple[str, str, str, str]  # a column row's last word, by the rows next to it: (above, below) a price
    spec_suffix: str  # after the spec amount in a spec box
    brands: tuple[str, ...]
    name_syllables: tuple[str, ...]  # product-name units, most frequent first (Zipf)
    fillers: tuple[str, ...]  # title words that are neither captions nor attributes
    decoys: tuple[str, ...]  # prices and discounts: masked boxes that are never captions
    lookalikes: dict[str, str]  # OCR-like confusions
    joiner: str  # between words ("" in Chinese, " " in English)

    def category(self, noun: str) -> Category:
        return self._by_noun[noun]

    @functools.cached_property
    def _by_noun(self) -> dict[str, Category]:
        return {c.noun: c for c in self.categories}

    def modifier(self, glyph: int) -> str:
        return self.modifiers[glyph]


# Drawn things shared by both languages (components/data/synthetic/shapes.py draws them).
COLUMN_GLYPHS = ("circle", "square", "triangle", "diamond", "ring", "plus", "hexagon", "bar")
GLYPH_COLOURS = ((210, 40, 40), (40, 90, 210), (30, 150, 60), (215, 160, 0), (140, 60, 190))
FINISHES = ("matte", "gloss", "pearl", "frost")
COLOUR_RGB = (
    (200, 30, 45),
    (60, 140, 220),
    (30, 105, 60),
    (235, 205, 40),
    (240, 150, 180),
    (35, 35, 40),
    (245, 130, 30),
    (150, 110, 200),
    (120, 80, 50),
    (150, 150, 155),
    (40, 170, 170),
    (120, 20, 50),
)
MARKER_GLYPHS = ("droplet", "leaf", "hand", "star", "sun", "snowflake", "heart", "shield", "flame", "bolt")
MARKER_RGB = (
    (40, 120, 230),
    (50, 160, 60),
    (220, 170, 130),
    (240, 180, 0),
    (250, 140, 0),
    (90, 200, 240),
    (230, 50, 90),
    (70, 90, 140),
    (235, 80, 20),
    (250, 200, 20),
)

# (noun zh, noun en, group index, shape, unit zh, unit en, numerals key, tail index in the group's tails)
_CATEGORIES = (
    ("面霜", "cream", 0, "jar", "克", "g", "small", 0),
    ("眼霜", "eye cream", 0, "jar", "克", "g", "tiny", 1),
    ("精华液", "serum", 0, "dropper", "毫升", "ml", "small", 2),
    ("洗面奶", "cleanser", 0, "tube", "克", "g", "mid", 0),
    ("防晒霜", "sunscreen", 0, "tube", "毫升", "ml", "small", 1),
    ("爽肤水", "toner", 0, "bottle", "毫升", "ml", "mid", 2),
    ("面膜", "mask", 0, "sachet", "片", "sheets", "count", 0),
    ("口红", "lipstick", 1, "lipstick", "支", "sticks", "few", 0),
    ("睫毛膏", "mascara", 1, "lipstick", "克", "g", "tiny", 1),
    ("粉底液", "foundation", 1, "bottle", "毫升", "ml", "small", 2),
    ("眼影", "eyeshadow", 1, "box", "色", "shades", "count", 0),
    ("香水", "perfume", 1, "dropper", "毫升", "ml", "small", 1),
    ("指甲油", "nail polish", 1, "dropper", "瓶", "bottles", "few", 2),
    ("坚果", "nuts", 2, "pouch", "克", "g", "big", 0),
    ("茶叶", "tea", 2, "tin", "克", "g", "big", 1),
    ("蜂蜜", "honey", 2, "jar", "克", "g", "big", 2),
    ("饼干", "cookies", 2, "box", "袋", "packs", "count", 0),
    ("巧克力", "chocolate", 2, "tin", "块", "bars", "count", 1),
    ("大米", "rice", 2, "pouch", "斤", "catty", "few", 2),
    ("牛肉干", "jerky", 2, "pouch", "克", "g", "mid", 0),
    ("牛奶", "milk", 3, "carton", "盒", "cartons", "count", 0),
    ("咖啡", "coffee", 3, "can", "杯", "cups", "count", 1),
    ("果汁", "juice", 3, "carton", "毫升", "ml", "mid", 2),
    ("矿泉水", "water", 3, "bottle", "瓶", "bottles", "count", 0),
    ("酸奶", "yogurt", 3, "carton", "杯", "cups", "count", 1),
    ("啤酒", "beer", 3, "can", "罐", "cans", "count", 2),
    ("耳机", "earbuds", 4, "headphones", "副", "pairs", "few", 0),
    ("手机", "phone", 4, "phone", "台", "units", "few", 1),
    ("音箱", "speaker", 4, "tin", "台", "units", "few", 2),
    ("充电宝", "power bank", 4, "phone", "个", "units", "few", 0),
    ("键盘", "keyboard", 4, "keyboard", "套", "sets", "few", 1),
    ("手表", "watch", 4, "watch", "只", "units", "few", 2),
    ("电饭煲", "rice cooker", 5, "cooker", "升", "litres", "few", 0),
    ("吹风机", "hair dryer", 5, "dryer", "台", "units", "few", 1),
    ("电水壶", "kettle", 5, "jug", "升", "litres", "few", 2),
    ("空气炸锅", "air fryer", 5, "cooker", "升", "litres", "few", 0),
    ("加湿器", "humidifier", 5, "cooker", "升", "litres", "few", 1),
    ("风扇", "fan", 5, "fan", "台", "units", "few", 2),
    ("运动鞋", "sneakers", 6, "shoe", "双", "pairs", "few", 0),
    ("背包", "backpack", 6, "backpack", "升", "litres", "mid", 1),
    ("短袖", "tshirt", 6, "tshirt", "件", "pieces", "few", 2),
    ("卫衣", "hoodie", 6, "tshirt", "件", "pieces", "few", 0),
    ("帽子", "cap", 6, "cap", "顶", "pieces", "few", 1),
    ("连衣裙", "dress", 6, "tshirt", "件", "pieces", "few", 2),
    ("洗衣液", "detergent", 7, "jug", "斤", "catty", "few", 0),
    ("保温杯", "flask", 7, "flask", "毫升", "ml", "mid", 1),
    ("毛巾", "towel", 7, "pillow", "条", "pieces", "few", 2),
    ("枕头", "pillow", 7, "pillow", "只", "pieces", "few", 0),
    ("收纳盒", "storage box", 7, "box", "个", "units", "few", 1),
    ("沐浴露", "body wash", 7, "jug", "毫升", "ml", "big", 2),
)
_NUMERALS_ZH = {
    "tiny": ("十", "十五", "二十", "三十"),
    "small": ("三十", "五十", "八十", "一百"),
    "mid": ("一百", "一百五十", "二百", "三百"),
    "big": ("二百五十", "五百", "七百五十", "一千"),
    "count": ("六", "八", "十", "十二", "二十", "三十"),
    "few": ("两", "三", "四", "五"),
}
_NUMERALS_EN = {
    "tiny": ("10", "15", "20", "30"),
    "small": ("30", "50", "80", "100"),
    "mid": ("100", "150", "200", "300"),
    "big": ("250", "500", "750", "1000"),
    "count": ("6", "8", "10", "12", "20", "30"),
    "few": ("2", "3", "4", "5"),
}

_GROUPS_ZH = ("护肤", "彩妆", "食品", "饮品", "数码", "家电", "服饰", "家居")
_GROUPS_EN = ("skincare", "makeup", "food", "drinks", "digital", "appliances", "apparel", "home")
# Per group: 36 two-character heads; the first HEADS_SHARED are every category's.
_HEADS_ZH = (
    "补水 保湿 修护 温和 舒缓 清爽 提亮 美白 淡斑 紧致 抗皱 控油 祛痘 镇静 滋润 去角 收敛 细致 "
    "嫩肤 焕颜 抗老 淡纹 亮肤 透亮 水润 锁水 清洁 卸妆 防晒 隔离 养肤 修复 弹润 柔嫩 焕亮 净透",
    "显色 持妆 服帖 轻薄 自然 细腻 不脱 绒雾 丝绒 水光 遮瑕 防水 防汗 不晕 纤长 浓密 卷翘 柔雾 "
    "闪耀 亮泽 百搭 显白 提气 元气 精致 立体 柔焦 控油 透气 裸感 清透 易涂 好推 高光 修容 滋养",
    "香脆 营养 健康 美味 精选 原味 酥脆 饱满 香甜 软糯 醇香 入味 鲜香 香浓 低糖 低脂 无添 手工 "
    "现烤 现做 颗粒 筋道 爽口 开胃 解馋 耐嚼 浓郁 微甜 咸香 麻辣 清香 回甘 饱腹 高纤 优选 鲜美",
    "清爽 解渴 纯正 天然 营养 顺滑 醇厚 香浓 冰爽 低糖 零糖 零脂 鲜榨 原榨 清甜 回甘 浓郁 丝滑 "
    "绵密 畅饮 提神 醒脑 冷萃 现磨 果香 奶香 麦香 气足 鲜活 高钙 益生 活菌 轻盈 清冽 甘甜 透亮",
    "智能 便携 耐用 高清 稳定 轻巧 降噪 续航 快充 蓝牙 音质 低延 轻薄 防水 流畅 护眼 大屏 超薄 "
    "静音 无线 触控 防摔 散热 长效 极速 精准 灵敏 清晰 沉浸 舒适 安全 省电 兼容 多能 强劲 时尚",
    "节能 静音 安全 智能 耐用 易洗 速热 恒温 省电 大风 速干 预约 定时 保温 防干 防溢 除菌 净化 "
    "加湿 强劲 均匀 快煮 一键 无涂 不粘 容量 小巧 便携 低噪 高效 精控 多挡 柔风 离子 护发 省心",
    "舒适 百搭 时尚 透气 亲肤 休闲 吸汗 柔软 修身 宽松 显瘦 保暖 轻盈 耐磨 防滑 缓震 回弹 包裹 "
    "挺括 垂坠 抗皱 速干 弹力 运动 简约 复古 潮流 减压 容量 收纳 防泼 抗菌 纯棉 冰丝 加绒 立体",
    "耐用 环保 安心 温和 持久 洁净 去渍 留香 低泡 易漂 护色 护衣 除菌 除螨 柔顺 保温 保冷 防漏 "
    "密封 便携 轻巧 易洗 吸水 柔软 蓬松 透气 亲肤 抗菌 收纳 分类 防潮 加厚 无味 卫生 清香 强效",
)
_HEADS_EN = (
    "hydrating moisture repair gentle soothing fresh brightening whitening spotless firming smoothing "
    "oilfree clear calming nourishing exfoliating toning refined softening radiant ageless lineless "
    "glowing dewy plump cleansing makeupfree sunproof shielding caring restoring bouncy tender luminous "
    "pure balanced",
    "vivid lasting flawless weightless natural fine transferproof matte velvet glassy concealing "
    "waterproof sweatproof smudgeproof lengthening volumising curling blurred shimmering pearly versatile "
    "brightening lively youthful polished sculpted softfocus oilfree breathable barely sheer blendable "
    "buildable highlighting contouring nourishing",
    "crunchy nutritious healthy tasty selected original crispy plump sweet chewy aromatic savoury fragrant "
    "rich lowsugar lowfat additivefree handmade baked fresh wholegrain springy refreshing appetising "
    "snackable hearty intense mellow salty spicy floral lingering filling fibrous choice delicious",
    "refreshing thirstquenching pure natural nutritious smooth full rich icy lowsugar sugarfree fatfree "
    "squeezed pressed crisp lingering intense silky creamy drinkable energising awakening coldbrew "
    "ground fruity milky malty sparkling lively calcium probiotic cultured light clean sweet clear",
    "smart portable durable hd stable light noisefree allday fastcharge bluetooth hifi lowlatency slim "
    "waterproof smooth eyecare bigscreen ultrathin silent wireless touch dropproof cool longlife rapid "
    "precise responsive crisp immersive comfy safe efficient compatible versatile powerful stylish",
    "efficient quiet safe smart durable washable fastheat steady lowpower strong quickdry scheduled "
    "timed warming dryproof spillproof germfree purifying humidifying powerful even quickcook onetouch "
    "uncoated nonstick roomy compact portable hushed effective precise multispeed breezy ionic haircare "
    "carefree",
    "comfy versatile stylish breathable soft casual sweatwicking supple slim relaxed flattering warm "
    "light tough grippy cushioned springy snug crisp flowing creaseless quickdry stretchy sporty minimal "
    "retro trendy padded roomy organised splashproof antibacterial cotton cool fleece structured",
    "durable green safe gentle lasting clean stainfree fragrant lowfoam rinseable coloursafe fabricsafe "
    "germfree mitefree silky hot cold leakproof sealed portable light washable absorbent soft fluffy airy "
    "skinfriendly antibacterial tidy sorted dry thick odourless hygienic fresh strong",
)
# Per group, its tails (a category takes one); 19 distinct.
_TAILS_ZH = (
    ("配方", "呵护", "精华"),
    ("妆感", "之选", "色调"),
    ("好味", "零食", "口感"),
    ("好喝", "体验", "时光"),
    ("科技", "体验"),
    ("家电", "科技", "好物"),
    ("穿搭", "设计", "好物"),
    ("好物", "生活", "品质"),
)
_TAILS_EN = (
    ("formula", "care", "essence"),
    ("finish", "pick", "shade"),
    ("taste", "snack", "bite"),
    ("sip", "moment", "refresher"),
    ("tech", "experience"),
    ("appliance", "tech", "find"),
    ("style", "design", "find"),
    ("essential", "living", "quality"),
)
_STEMS_ZH = ("焕活肌肤", "美妆焕新", "美味零食", "畅饮时刻", "智享生活", "品质家电", "潮流穿搭", "温馨家居")
_STEMS_EN = (
    "skin renewal",
    "beauty refresh",
    "snack time",
    "drink up",
    "smart living",
    "home tech",
    "style edit",
    "cosy home",
)
_THEMES_ZH = ("狂欢", "特惠", "上新", "钜惠")
_THEMES_EN = ("festival", "deals", "launch", "bonanza")
_SLOGANS_ZH = (
    "品质生活 好物推荐 限时抢购 人气爆款 匠心之作 口碑之选 放心选购 闭眼入手 宠爱自己 悦享生活 "
    "精致生活 超值好物 居家必备 诚意之作 新品首发 品质保障 精挑细选 用心之选 简单生活 美好时光 "
    "大牌品质 国货之光 好评如潮 回购首选 送礼佳品 惊喜不断 舒心之选 人气好物 一见倾心 爱不释手"
)
_SLOGANS_EN = (
    "quality living|top pick|grab it now|crowd favourite|crafted with care|rated best|buy with confidence|"
    "no regrets|treat yourself|enjoy life|refined living|great value|home must have|made with heart|"
    "just launched|quality assured|hand picked|chosen with care|simple living|good times|big brand quality|"
    "local pride|loved by all|buy again|perfect gift|always surprising|feel good pick|popular find|"
    "love at first sight|hard to put down"
)
_MODIFIERS_ZH = (
    "深层 恒久 强力 本真 臻萃 极致 全面 持续 加倍 臻选 专业 浓缩 精纯 奢华 柔和 多重 超级 双重 典藏 焕新 "
    "加强 至臻 纯净 匠心 优质 卓越 匠造 悉心 全新 进口 原生 出众 非凡 畅享 用心 精细 真材 独特 尊享 智选"
)
_MODIFIERS_EN = (
    "deep lasting potent natural efficient ultimate complete longacting double premium expert concentrated "
    "purest luxe mild multi super dual timeless elevated boosted supreme clean artisan fine superior "
    "crafted careful allnew imported native outstanding remarkable joyful thoughtful precise honest "
    "unique exclusive curated"
)
_COLOURS_ZH = ("正红", "天蓝", "墨绿", "柠黄", "樱粉", "曜黑", "暖橙", "薰紫", "咖棕", "雾灰", "湖青", "酒红")
_COLOURS_EN = (
    "red", "blue", "green", "yellow", "pink", "black", "orange", "purple", "brown", "grey", "teal", "burgundy",
)  # fmt: skip
_FINISHES_ZH = ("哑光", "亮面", "珠光", "磨砂")
_FINISHES_EN = ("matte", "gloss", "pearl", "frosted")
_MARKER_PHRASES_ZH = ("水感", "植萃", "触感", "明星", "阳光", "冰感", "贴心", "守护", "火爆", "闪充")
_MARKER_PHRASES_EN = (
    "moist",
    "botanical",
    "handfeel",
    "bestseller",
    "energy",
    "icy",
    "caring",
    "protective",
    "blazing",
    "fast",
)
# Brand-like syllables (Chinese) and Latin syllables (English).
_BRAND_SYLLABLES_ZH = (
    "森语星辰雅诗兰黛悦木之源花韵清泉初心素颜佰草集美丽颜如玉蓝月光朗格润泽雪域青禾云朵暖阳溪谷"
    "米兔橙果麦香乐享优品臻选尚品卡迪菲娜伊莎丽芙蕾诺薇欧莱凯宝嘉骏逸驰迅锐捷科奇思维鼎盛恒安康"
    "泰和顺宜家居舒适简约小熊猫猴象鹿羚鸥鹤燕鲸豚山川河湖海峰林竹梅菊松柏禾谷稻麦茗茶蜜糖奶酪"
)
_BRAND_SYLLABLES_EN = (
    "ve", "lo", "ra", "ma", "ni", "so", "ta", "ki", "ru", "me", "la", "no", "vi", "sa", "do", "ze",
    "ka", "li", "mo", "ba", "ce", "fi", "ga", "ho", "ju", "pe", "qi", "ro", "su", "tu",
)  # fmt: skip
_FILLERS_ZH = (
    "官方正品", "新款上市", "旗舰店", "热销爆款", "升级款", "限量版", "家用", "大容量", "礼盒装", "经典款",
    "正品保障", "顺丰包邮", "官方直营", "年度新品", "店长推荐",
)  # fmt: skip
_FILLERS_EN = (
    "official", "new", "flagship", "hot", "upgraded", "limited", "home", "large", "gift set", "classic",
    "genuine", "free shipping", "direct", "new this year", "staff pick",
)  # fmt: skip
_DECOYS_ZH = ("¥{n}", "{d}折", "满{a}减{b}", "限时{d}折", "第2件半价", "到手价{n}", "券后{n}", "立减{b}")
_DECOYS_EN = (
    "${n}",
    "{d}0% off",
    "save {b}",
    "{d}0% off today",
    "2nd half price",
    "now ${n}",
    "coupon ${b}",
    "minus ${b}",
)
_LOOKALIKES_ZH = {
    "持": "特", "清": "请", "润": "闰", "肤": "扶", "护": "沪", "水": "永", "天": "夭", "大": "太",
    "白": "臼", "己": "已", "未": "末", "人": "入", "土": "士", "日": "曰", "干": "千", "力": "刀",
    "防": "访", "洁": "结", "净": "静", "暖": "暧", "香": "杳", "亮": "壳", "体": "休", "自": "目",
    "口": "囗", "王": "玉", "贝": "见", "问": "间", "折": "拆", "侯": "候", "睛": "晴", "密": "蜜",
}  # fmt: skip
_LOOKALIKES_EN = {"l": "i", "o": "c", "e": "c", "n": "h", "u": "v", "m": "n", "t": "f"}
# Characters that should not make up product names.
_UNWANTED = set("死尸屎尿粪癌毒病丧葬坟墓奸淫妓嫖赌杀屠凶恶鬼魔贼盗匪娼婊")


def _joins(lang: str) -> tuple[str, str, str, str]:
    return ("推荐", "特价", "再享", "超值") if lang == "zh" else ("recommended", "deal", "plus", "value")


def gb2312_level1() -> tuple[str, ...]:
    """The 3,755 most common characters of GB2312 (level 1), in the standard's order."""
    chars = []
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes((high, low)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return tuple(chars)


def _split(text: str, separator: str = " ") -> tuple[str, ...]:
    return tuple(t for t in text.split(separator) if t)


def _category_heads(pool: tuple[str, ...], index_in_group: int) -> tuple[str, ...]:
    """The group's shared heads, then HEADS_OWN from the rest of its pool, by the category's place."""
    shared, rest = pool[:HEADS_SHARED], pool[HEADS_SHARED:]
    own = tuple(rest[(index_in_group * HEADS_OWN + k) % len(rest)] for k in range(HEADS_OWN))
    return shared + own


def _reserved(lang: str) -> set[str]:
    """Words of every other role: a head is none of them, so that a part's text tells its role."""
    zh = lang == "zh"
    words = set(_split(_MODIFIERS_ZH if zh else _MODIFIERS_EN)) | set(_COLOURS_ZH if zh else _COLOURS_EN)
    words |= set(_FINISHES_ZH if zh else _FINISHES_EN) | set(_MARKER_PHRASES_ZH if zh else _MARKER_PHRASES_EN)
    words |= {t for group in (_TAILS_ZH if zh else _TAILS_EN) for t in group} | set(_joins(lang))
    return words


def _categories(lang: str) -> tuple[Category, ...]:
    reserved = _reserved(lang)
    heads = [tuple(h for h in _split(pool) if h not in reserved) for pool in (_HEADS_ZH if lang == "zh" else _HEADS_EN)]
    tails = _TAILS_ZH if lang == "zh" else _TAILS_EN
    numerals = _NUMERALS_ZH if lang == "zh" else _NUMERALS_EN
    groups = _GROUPS_ZH if lang == "zh" else _GROUPS_EN
    seen: dict[int, int] = {}
    out = []
    for noun_zh, noun_en, group, shape, unit_zh, unit_en, amounts, tail in _CATEGORIES:
        place = seen.get(group, 0)
        seen[group] = place + 1
        out.append(
            Category(
                noun=noun_zh if lang == "zh" else noun_en,
                group=groups[group],
                shape=shape,
                unit=unit_zh if lang == "zh" else unit_en,
                numerals=numerals[amounts],
                tail=tails[group][tail % len(tails[group])],
                heads=_category_heads(heads[group], place),
            )
        )
    return tuple(out)


def _brands(lang: str, rng: random.Random) -> tuple[str, ...]:
    syllables = _BRAND_SYLLABLES_ZH if lang == "zh" else _BRAND_SYLLABLES_EN
    brands: list[str] = []
    while len(brands) < N_BRANDS:
        size = rng.choices((2, 3), weights=(0.7, 0.3))[0]
        brand = "".join(rng.sample(syllables, size))
        if brand not in brands:
            brands.append(brand)
    return tuple(brands)


def _name_syllables(lang: str, rng: random.Random) -> tuple[str, ...]:
    if lang == "zh":
        chars = [c for c in gb2312_level1() if c not in _UNWANTED]
        rng.shuffle(chars)
        return tuple(chars)
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    units = [c + v for c in consonants for v in vowels] + [v + c for v in vowels for c in "lnrs"]
    rng.shuffle(units)
    return tuple(units)


@functools.cache
def build_lexicon(lang: str) -> Lexicon:
    rng = random.Random(f"{LEXICON_SEED}:{lang}")
    zh = lang == "zh"
    return Lexicon(
        lang=lang,
        groups=_GROUPS_ZH if zh else _GROUPS_EN,
        categories=_categories(lang),
        stems=dict(zip(_GROUPS_ZH if zh else _GROUPS_EN, _STEMS_ZH if zh else _STEMS_EN, strict=True)),
        themes=_THEMES_ZH if zh else _THEMES_EN,
        slogans=_split(_SLOGANS_ZH) if zh else _split(_SLOGANS_EN, "|"),
        modifiers=_split(_MODIFIERS_ZH if zh else _MODIFIERS_EN),
        colours=tuple(zip(_COLOURS_ZH if zh else _COLOURS_EN, COLOUR_RGB, strict=True)),
        finishes=_FINISHES_ZH if zh else _FINISHES_EN,
        markers=tuple(
            Marker(glyph, rgb, phrase)
            for glyph, rgb, phrase in zip(
                MARKER_GLYPHS, MARKER_RGB, _MARKER_PHRASES_ZH if zh else _MARKER_PHRASES_EN, strict=True
            )
        ),
        brand_suffixes=("出品", "官方旗舰") if zh else ("original", "official store"),
        joins=_joins(lang),
        spec_suffix="装" if zh else "pack",
        brands=_brands(lang, rng),
        name_syllables=_name_syllables(lang, rng),
        fillers=_FILLERS_ZH if zh else _FILLERS_EN,
        decoys=_DECOYS_ZH if zh else _DECOYS_EN,
        lookalikes=_LOOKALIKES_ZH if zh else _LOOKALIKES_EN,
        joiner="" if zh else " ",
    )


ZH = build_lexicon("zh")
EN = build_lexicon("en")
LEXICONS = {"zh": ZH, "en": EN}
