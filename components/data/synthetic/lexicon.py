"""What the synthetic products are made of, in Chinese (default) and English.

Each category has a group (whose selling points fill the bottom banner), a drawn shape, and a pool
of features (efficacy / selling points) from which an item takes 2 to 4 in order. Colours and
markers are drawn on the image and never written into the product info, so only the image tells them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    group: str
    shape: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class Marker:
    glyph: str
    rgb: tuple[int, int, int]
    phrase: str


@dataclass(frozen=True)
class Lexicon:
    lang: str
    categories: tuple[Category, ...]
    banners: dict[str, tuple[str, ...]]  # group -> selling points of the group
    brands: tuple[str, ...]
    title_fillers: tuple[str, ...]
    colours: tuple[tuple[str, tuple[int, int, int]], ...]  # call-out phrase, product RGB
    markers: tuple[Marker, ...]
    distractors: tuple[str, ...]  # templates with {n}, {a}, {b}: prices and discounts
    lookalikes: dict[str, str]  # OCR-like confusions applied to training captions
    joiner: str  # between words of the info ("" in Chinese, " " in English)


_ZH_CATEGORIES = (
    Category(
        "面霜",
        "护肤",
        "jar",
        (
            "深层补水",
            "持久保湿",
            "修护屏障",
            "提亮肤色",
            "淡化细纹",
            "温和不刺激",
            "清爽不油腻",
            "紧致弹润",
            "二十四小时长效锁水",
            "熬夜肌急救",
        ),
    ),
    Category(
        "精华液",
        "护肤",
        "dropper",
        (
            "细致毛孔",
            "焕亮肌肤",
            "抗氧化",
            "舒缓修护",
            "水润透亮",
            "淡化痘印",
            "吸收迅速",
            "改善暗沉",
            "一瓶解决多重肌肤问题",
            "小分子快速渗透",
        ),
    ),
    Category(
        "洗面奶",
        "护肤",
        "tube",
        (
            "深层清洁",
            "温和去角质",
            "控油祛痘",
            "绵密泡沫",
            "氨基酸配方",
            "洗后不紧绷",
            "收缩毛孔",
            "敏感肌也能放心用",
            "一洗清爽",
        ),
    ),
    Category(
        "防晒霜",
        "护肤",
        "tube",
        (
            "高倍防晒",
            "轻薄透气",
            "防水防汗",
            "隔离紫外线",
            "不假白",
            "养肤成分",
            "户外适用",
            "全天候持久防护",
            "清透不闷痘",
        ),
    ),
    Category(
        "口红",
        "护肤",
        "lipstick",
        ("显色持久", "滋润不拔干", "丝绒哑光", "不沾杯", "显白百搭", "柔滑细腻", "一抹显色黄皮友好", "薄涂厚涂都好看"),
    ),
    Category(
        "坚果",
        "食品",
        "pouch",
        ("颗颗饱满", "香脆可口", "每日营养", "独立小包", "低温烘焙", "无添加剂", "精选优质原料", "办公室追剧必备"),
    ),
    Category(
        "茶叶",
        "食品",
        "tin",
        ("高山好茶", "清香回甘", "手工采摘", "原产地直发", "汤色明亮", "耐泡耐冲", "明前头采嫩芽", "传统工艺古法制作"),
    ),
    Category(
        "牛奶",
        "食品",
        "carton",
        ("优质奶源", "高钙营养", "醇厚香浓", "新鲜直达", "零添加", "全家可饮", "草原牧场天然好奶", "一口香浓"),
    ),
    Category(
        "蜂蜜",
        "食品",
        "jar",
        ("天然纯正", "农家自产", "浓稠拉丝", "营养丰富", "无添加糖", "冲饮佳品", "源自深山百花蜜", "温水冲调更营养"),
    ),
    Category(
        "耳机",
        "数码家电",
        "headphones",
        ("主动降噪", "超长续航", "蓝牙连接", "佩戴舒适", "高清音质", "快速充电", "入耳无感轻若无物", "通话清晰不卡顿"),
    ),
    Category(
        "电饭煲",
        "数码家电",
        "cooker",
        ("智能预约", "均匀加热", "不粘内胆", "一键快煮", "大容量", "多功能菜单", "柴火饭般香甜", "一人食也能做"),
    ),
    Category(
        "吹风机",
        "数码家电",
        "dryer",
        ("负离子护发", "速干大风", "恒温控制", "轻巧便携", "低噪音", "折叠收纳", "三分钟速干不伤发", "出差旅行好帮手"),
    ),
    Category(
        "运动鞋",
        "服饰",
        "shoe",
        ("轻盈透气", "缓震回弹", "防滑耐磨", "舒适包裹", "时尚百搭", "久穿不累", "专业跑步运动鞋", "一脚蹬轻松穿脱"),
    ),
    Category(
        "背包",
        "服饰",
        "backpack",
        ("大容量", "防水面料", "多层收纳", "减压背带", "轻便耐用", "商务休闲", "可放十五寸电脑", "出行旅游必备"),
    ),
    Category(
        "短袖",
        "服饰",
        "tshirt",
        ("纯棉亲肤", "透气吸汗", "宽松版型", "不易变形", "四季百搭", "柔软舒适", "洗后不缩水不起球", "多色可选"),
    ),
    Category(
        "洗衣液",
        "家居",
        "jug",
        (
            "强效去渍",
            "持久留香",
            "低泡易漂",
            "护色护衣",
            "温和无刺激",
            "机洗手洗",
            "一次去除多种顽固污渍",
            "母婴衣物可用",
        ),
    ),
    Category(
        "保温杯",
        "家居",
        "flask",
        (
            "长效保温",
            "食品级钢材",
            "防漏设计",
            "一键开盖",
            "轻巧便携",
            "大口易清洗",
            "热水十二小时保温",
            "办公室出行两用",
        ),
    ),
)

_EN_CATEGORIES = (
    Category(
        "face cream",
        "skincare",
        "jar",
        (
            "deep hydration",
            "lasting moisture",
            "barrier repair",
            "brightening",
            "fine lines",
            "gentle formula",
            "non greasy",
            "firming",
        ),
    ),
    Category(
        "serum",
        "skincare",
        "dropper",
        (
            "refines pores",
            "radiant skin",
            "antioxidant",
            "soothing",
            "dewy glow",
            "fades marks",
            "fast absorbing",
            "evens tone",
        ),
    ),
    Category(
        "cleanser",
        "skincare",
        "tube",
        (
            "deep cleansing",
            "gentle exfoliation",
            "oil control",
            "rich foam",
            "amino acid",
            "no tightness",
            "clears pores",
        ),
    ),
    Category(
        "sunscreen",
        "skincare",
        "tube",
        ("high spf", "light texture", "waterproof", "uv shield", "no white cast", "skin care", "outdoor ready"),
    ),
    Category(
        "lipstick",
        "skincare",
        "lipstick",
        ("long wear", "hydrating balm", "velvet matte", "no transfer", "flattering shade", "silky smooth"),
    ),
    Category(
        "nuts",
        "food",
        "pouch",
        ("plump kernels", "crunchy", "daily nutrition", "single packs", "slow roasted", "no additives"),
    ),
    Category(
        "green tea",
        "food",
        "tin",
        ("mountain grown", "sweet finish", "hand picked", "direct from farm", "bright brew", "many infusions"),
    ),
    Category(
        "milk",
        "food",
        "carton",
        ("quality dairy", "high calcium", "rich taste", "farm fresh", "zero additives", "for the family"),
    ),
    Category(
        "honey",
        "food",
        "jar",
        ("pure natural", "farm made", "thick texture", "nutritious", "no added sugar", "great in drinks"),
    ),
    Category(
        "earbuds",
        "electronics",
        "headphones",
        ("noise cancelling", "long battery", "bluetooth", "comfy fit", "hifi sound", "fast charging"),
    ),
    Category(
        "rice cooker",
        "electronics",
        "cooker",
        ("smart timer", "even heating", "non stick pot", "quick cook", "large capacity", "multi menu"),
    ),
    Category(
        "hair dryer",
        "electronics",
        "dryer",
        ("ionic care", "fast drying", "constant heat", "travel size", "quiet motor", "foldable"),
    ),
    Category(
        "sneakers",
        "fashion",
        "shoe",
        ("breathable", "cushioned", "anti slip", "snug fit", "goes with all", "all day comfort"),
    ),
    Category(
        "backpack",
        "fashion",
        "backpack",
        ("roomy", "water resistant", "many pockets", "padded straps", "light and tough", "work or play"),
    ),
    Category(
        "t shirt",
        "fashion",
        "tshirt",
        ("pure cotton", "wicks sweat", "relaxed fit", "keeps shape", "all seasons", "soft touch"),
    ),
    Category(
        "detergent",
        "home",
        "jug",
        ("stain remover", "lasting scent", "low foam", "colour safe", "gentle wash", "machine or hand"),
    ),
    Category(
        "flask",
        "home",
        "flask",
        ("keeps hot", "food grade steel", "leak proof", "one touch lid", "light carry", "wide mouth"),
    ),
)

ZH = Lexicon(
    lang="zh",
    categories=_ZH_CATEGORIES,
    banners={
        "护肤": ("专柜品质", "肌肤焕新", "敏感肌可用", "大牌同厂品质保证"),
        "食品": ("新鲜美味", "健康零食", "放心食材", "产地直发新鲜到家"),
        "数码家电": ("品质保障", "智能生活", "全国联保", "七天无理由退换货"),
        "服饰": ("潮流新品", "舒适出行", "经典款式", "今年流行新款上市"),
        "家居": ("居家好物", "品质生活", "家庭装", "让生活更简单更美好"),
    },
    brands=(
        "润颜",
        "雪肌",
        "花漾",
        "悦诗",
        "青禾",
        "山野",
        "牧场",
        "果然",
        "声悦",
        "智厨",
        "风尚",
        "步云",
        "行者",
        "洁净",
        "暖居",
        "臻品",
        "锦绣",
        "蓝海",
        "初心",
        "晨光",
        "极光",
        "星辰",
        "森语",
        "木棉",
    ),
    title_fillers=("官方正品", "新款", "旗舰店", "热销", "升级款", "限量版", "家用", "大容量装", "礼盒", "经典款"),
    colours=(
        ("中国红", (200, 30, 45)),
        ("天空蓝", (60, 140, 220)),
        ("森林绿", (40, 130, 70)),
        ("柠檬黄", (235, 205, 40)),
        ("樱花粉", (240, 150, 180)),
        ("典雅黑", (35, 35, 40)),
        ("活力橙", (245, 130, 30)),
        ("薰衣紫", (150, 110, 200)),
        ("咖啡棕", (120, 80, 50)),
    ),
    markers=(
        Marker("droplet", (40, 120, 230), "水润保湿"),
        Marker("leaf", (50, 160, 60), "天然植萃"),
        Marker("hand", (220, 170, 130), "手感舒适"),
        Marker("star", (240, 180, 0), "明星爆款"),
        Marker("sun", (250, 140, 0), "阳光活力"),
        Marker("snowflake", (90, 200, 240), "冰爽清凉"),
        Marker("heart", (230, 50, 90), "贴心呵护"),
        Marker("shield", (70, 90, 140), "安全守护"),
    ),
    distractors=("¥{n}", "{d}折", "满{a}减{b}", "限时{d}折", "第2件半价", "到手价{n}"),
    lookalikes={
        "持": "特",
        "清": "请",
        "润": "闰",
        "肤": "扶",
        "护": "沪",
        "水": "永",
        "天": "夭",
        "大": "太",
        "白": "臼",
        "己": "已",
        "未": "末",
        "人": "入",
        "土": "士",
        "日": "曰",
        "干": "千",
        "力": "刀",
        "防": "访",
        "洁": "结",
        "净": "静",
        "暖": "暧",
        "香": "杳",
        "亮": "壳",
    },
    joiner="",
)

EN = Lexicon(
    lang="en",
    categories=_EN_CATEGORIES,
    banners={
        "skincare": ("counter quality", "renew your skin", "for sensitive skin"),
        "food": ("fresh and tasty", "healthy snack", "trusted source"),
        "electronics": ("quality assured", "smart living", "full warranty"),
        "fashion": ("new season", "move in comfort", "classic style"),
        "home": ("home essential", "better living", "family size"),
    },
    brands=(
        "lumio",
        "snowy",
        "bloom",
        "verde",
        "oakly",
        "meadow",
        "pasture",
        "fruity",
        "sonic",
        "chefly",
        "stride",
        "cloudy",
        "walker",
        "purely",
        "cosy",
        "prime",
        "silken",
        "azure",
        "origin",
        "dawn",
        "aurora",
        "stella",
        "sylvan",
        "kapok",
    ),
    title_fillers=(
        "official",
        "new",
        "flagship",
        "best seller",
        "upgraded",
        "limited",
        "home use",
        "value pack",
        "gift box",
        "classic",
    ),
    colours=(
        ("ruby red", (200, 30, 45)),
        ("sky blue", (60, 140, 220)),
        ("forest green", (40, 130, 70)),
        ("lemon yellow", (235, 205, 40)),
        ("blossom pink", (240, 150, 180)),
        ("jet black", (35, 35, 40)),
        ("vivid orange", (245, 130, 30)),
        ("lavender", (150, 110, 200)),
        ("mocha brown", (120, 80, 50)),
    ),
    markers=(
        Marker("droplet", (40, 120, 230), "moisturising"),
        Marker("leaf", (50, 160, 60), "plant extracts"),
        Marker("hand", (220, 170, 130), "soft feel"),
        Marker("star", (240, 180, 0), "star pick"),
        Marker("sun", (250, 140, 0), "sunny energy"),
        Marker("snowflake", (90, 200, 240), "cool fresh"),
        Marker("heart", (230, 50, 90), "caring touch"),
        Marker("shield", (70, 90, 140), "safe guard"),
    ),
    distractors=("${n}", "{d}0% off", "save ${b}", "only ${n}", "2nd half price"),
    lookalikes={"l": "i", "o": "c", "e": "c", "n": "h", "u": "v", "m": "n", "t": "f"},
    joiner=" ",
)

LEXICONS = {"zh": ZH, "en": EN}
