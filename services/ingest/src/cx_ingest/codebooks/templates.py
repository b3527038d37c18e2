"""Industry starter codebooks: 3-level aspect trees with names in zh-Hans / zh-Hant / en and keywords.

Compact notation: (id, 简体, 繁體, English, [keywords]) with children nested under each level-1/level-2 node.
"""

from __future__ import annotations

from typing import Any

Leaf = tuple[str, str, str, str, list[str]]
Branch = tuple[str, str, str, str, list[Leaf]]
Root = tuple[str, str, str, str, list[Branch]]

_SERVICE: Root = (
    "service",
    "服务",
    "服務",
    "Service",
    [
        (
            "staff",
            "人员服务",
            "人員服務",
            "Staff",
            [
                (
                    "attitude",
                    "服务态度",
                    "服務態度",
                    "Attitude",
                    ["态度", "冷漠", "不耐烦", "attitude", "rude"],
                ),
                ("expertise", "专业能力", "專業能力", "Expertise", ["专业", "不懂", "解答", "knowledgeable", "expert"]),
            ],
        ),
        (
            "efficiency",
            "服务效率",
            "服務效率",
            "Efficiency",
            [
                ("waiting", "等待时间", "等待時間", "Waiting time", ["排队", "等了", "等待", "queue", "wait"]),
                (
                    "response",
                    "响应速度",
                    "響應速度",
                    "Response speed",
                    ["回复慢", "没人回", "响应", "response", "reply"],
                ),
            ],
        ),
    ],
)
_PRICE: Root = (
    "price",
    "价格",
    "價格",
    "Price",
    [
        (
            "value",
            "性价比",
            "性價比",
            "Value for money",
            [
                (
                    "expensive",
                    "价格偏高",
                    "價格偏高",
                    "Too expensive",
                    ["贵", "价格高", "不值", "expensive", "overpriced"],
                ),
                (
                    "promotion",
                    "促销优惠",
                    "促銷優惠",
                    "Promotions",
                    ["优惠", "折扣", "满减", "券", "discount", "coupon"],
                ),
            ],
        ),
    ],
)

TEMPLATES: dict[str, tuple[str, str, list[Root]]] = {
    "retail": (
        "零售门店",
        "Retail stores",
        [
            _SERVICE,
            _PRICE,
            (
                "store",
                "门店环境",
                "門店環境",
                "Store environment",
                [
                    (
                        "cleanliness",
                        "整洁卫生",
                        "整潔衛生",
                        "Cleanliness",
                        [
                            ("hygiene", "卫生状况", "衛生狀況", "Hygiene", ["脏", "卫生", "干净", "dirty", "clean"]),
                            ("restroom", "洗手间", "洗手間", "Restrooms", ["洗手间", "厕所", "restroom", "toilet"]),
                        ],
                    ),
                    (
                        "facilities",
                        "设施",
                        "設施",
                        "Facilities",
                        [
                            ("parking", "停车", "停車", "Parking", ["停车", "车位", "parking"]),
                            (
                                "layout",
                                "布局导视",
                                "佈局導視",
                                "Layout & signage",
                                ["找不到", "指引", "布局", "signage", "layout"],
                            ),
                        ],
                    ),
                ],
            ),
            (
                "product",
                "商品",
                "商品",
                "Products",
                [
                    (
                        "assortment",
                        "品类",
                        "品類",
                        "Assortment",
                        [
                            ("stockout", "缺货", "缺貨", "Out of stock", ["缺货", "没货", "断货", "out of stock"]),
                            (
                                "variety",
                                "品种丰富度",
                                "品種豐富度",
                                "Variety",
                                ["选择少", "品种", "variety", "selection"],
                            ),
                        ],
                    ),
                    (
                        "quality",
                        "商品质量",
                        "商品質量",
                        "Product quality",
                        [
                            (
                                "freshness",
                                "新鲜度",
                                "新鮮度",
                                "Freshness",
                                ["不新鲜", "过期", "变质", "expired", "fresh"],
                            ),
                            (
                                "defect",
                                "质量问题",
                                "質量問題",
                                "Defects",
                                ["坏了", "破损", "质量差", "broken", "defective"],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    ),
    "ecommerce": (
        "电商",
        "E-commerce",
        [
            _SERVICE,
            _PRICE,
            (
                "logistics",
                "物流",
                "物流",
                "Logistics",
                [
                    (
                        "delivery",
                        "配送",
                        "配送",
                        "Delivery",
                        [
                            (
                                "speed",
                                "配送速度",
                                "配送速度",
                                "Delivery speed",
                                ["配送", "物流慢", "发货慢", "shipping", "delivery"],
                            ),
                            ("damage", "包裹破损", "包裹破損", "Damaged parcel", ["包装破", "压坏", "破损", "damaged"]),
                        ],
                    ),
                    (
                        "returns",
                        "退换货",
                        "退換貨",
                        "Returns",
                        [
                            ("refund", "退款", "退款", "Refunds", ["退款", "退钱", "refund"]),
                            ("exchange", "换货", "換貨", "Exchanges", ["换货", "退货", "return", "exchange"]),
                        ],
                    ),
                ],
            ),
            (
                "product",
                "商品",
                "商品",
                "Products",
                [
                    (
                        "description",
                        "描述相符",
                        "描述相符",
                        "As described",
                        [
                            (
                                "mismatch",
                                "与描述不符",
                                "與描述不符",
                                "Not as described",
                                ["不符", "色差", "假货", "fake"],
                            ),
                            ("size", "尺码", "尺碼", "Sizing", ["尺码", "偏大", "偏小", "size"]),
                        ],
                    ),
                ],
            ),
        ],
    ),
    "food_delivery": (
        "外卖",
        "Food delivery",
        [
            _SERVICE,
            _PRICE,
            (
                "food",
                "餐品",
                "餐品",
                "Food",
                [
                    (
                        "taste",
                        "口味",
                        "口味",
                        "Taste",
                        [
                            ("flavour", "味道", "味道", "Flavour", ["难吃", "好吃", "咸", "淡", "tasty", "bland"]),
                            ("temperature", "温度", "溫度", "Temperature", ["凉了", "冷了", "cold"]),
                        ],
                    ),
                    (
                        "safety",
                        "食品安全",
                        "食品安全",
                        "Food safety",
                        [
                            ("foreign", "异物", "異物", "Foreign objects", ["头发", "虫子", "异物", "hair", "bug"]),
                            ("illness", "食用不适", "食用不適", "Illness", ["拉肚子", "不舒服", "食物中毒", "sick"]),
                        ],
                    ),
                ],
            ),
            (
                "rider",
                "骑手配送",
                "騎手配送",
                "Rider",
                [
                    (
                        "timeliness",
                        "准时",
                        "準時",
                        "Timeliness",
                        [
                            ("late", "送餐超时", "送餐超時", "Late delivery", ["超时", "迟到", "送得慢", "late"]),
                            ("spill", "洒漏", "灑漏", "Spills", ["洒了", "漏了", "spilled"]),
                        ],
                    ),
                ],
            ),
        ],
    ),
    "automotive": (
        "汽车",
        "Automotive",
        [
            _SERVICE,
            _PRICE,
            (
                "sales",
                "销售",
                "銷售",
                "Sales",
                [
                    (
                        "test_drive",
                        "试驾",
                        "試駕",
                        "Test drive",
                        [
                            ("booking", "试驾预约", "試駕預約", "Booking", ["试驾", "预约", "test drive"]),
                            ("delivery", "交车", "交車", "Handover", ["交车", "提车", "handover"]),
                        ],
                    ),
                ],
            ),
            (
                "aftersales",
                "售后",
                "售後",
                "After-sales",
                [
                    (
                        "maintenance",
                        "保养维修",
                        "保養維修",
                        "Maintenance",
                        [
                            ("repair_quality", "维修质量", "維修質量", "Repair quality", ["没修好", "返修", "repair"]),
                            ("parts", "配件", "配件", "Parts", ["配件", "缺件", "parts"]),
                        ],
                    ),
                    (
                        "vehicle",
                        "车辆质量",
                        "車輛質量",
                        "Vehicle quality",
                        [
                            ("noise", "异响", "異響", "Noise", ["异响", "噪音", "noise"]),
                            (
                                "electronics",
                                "车机电子",
                                "車機電子",
                                "Electronics",
                                ["车机", "死机", "导航", "infotainment"],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    ),
    "banking": (
        "银行",
        "Banking",
        [
            _SERVICE,
            (
                "fees",
                "收费",
                "收費",
                "Fees",
                [
                    (
                        "charges",
                        "手续费",
                        "手續費",
                        "Charges",
                        [
                            (
                                "hidden",
                                "乱收费",
                                "亂收費",
                                "Hidden fees",
                                ["乱收费", "扣费", "年费", "hidden fee", "charged"],
                            ),
                            ("rates", "利率", "利率", "Rates", ["利率", "利息", "interest rate"]),
                        ],
                    ),
                ],
            ),
            (
                "digital",
                "线上渠道",
                "線上渠道",
                "Digital channels",
                [
                    (
                        "app",
                        "手机银行",
                        "手機銀行",
                        "Mobile app",
                        [
                            ("login", "登录", "登錄", "Login", ["登录", "验证码", "login", "otp"]),
                            ("crash", "闪退卡顿", "閃退卡頓", "Crashes", ["闪退", "卡顿", "打不开", "crash"]),
                        ],
                    ),
                ],
            ),
            (
                "risk",
                "风险合规",
                "風險合規",
                "Risk & compliance",
                [
                    (
                        "fraud",
                        "诈骗盗刷",
                        "詐騙盜刷",
                        "Fraud",
                        [
                            ("card_theft", "盗刷", "盜刷", "Card theft", ["盗刷", "被盗", "fraud", "unauthorized"]),
                            ("mis_selling", "误导销售", "誤導銷售", "Mis-selling", ["误导", "强制搭售", "mis-sold"]),
                        ],
                    ),
                ],
            ),
        ],
    ),
}


def template_nodes(name: str) -> list[dict[str, Any]]:
    """The template as NodeIn dicts (ids prefixed by their parents so they are unique in the tree)."""
    _, _, roots = TEMPLATES[name]
    nodes: list[dict[str, Any]] = []

    def names(hans: str, hant: str, en: str) -> dict[str, str]:
        return {"zh-Hans": hans, "zh-Hant": hant, "en": en}

    for rid, hans, hant, en, branches in roots:
        nodes.append({"id": rid, "names": names(hans, hant, en)})
        for bid, bhans, bhant, ben, leaves in branches:
            nodes.append({"id": f"{rid}.{bid}", "parent_id": rid, "names": names(bhans, bhant, ben)})
            for lid, lhans, lhant, len_, keywords in leaves:
                nodes.append(
                    {
                        "id": f"{rid}.{bid}.{lid}",
                        "parent_id": f"{rid}.{bid}",
                        "names": names(lhans, lhant, len_),
                        "keywords": keywords,
                    }
                )
    return nodes
