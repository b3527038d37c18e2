"""Hand-written sentence templates used to generate training data deterministically.

These are *training* sentences only. The hand-written neutral test rows in cx_nlp/data were written separately and
do not come from these templates.
"""

from __future__ import annotations

import random

ZH_NEUTRAL_TEMPLATES = (
    "请问{obj}怎么{act}？",
    "我想咨询一下{obj}的问题",
    "{obj}在哪里可以查到？",
    "你好，我想了解一下{obj}",
    "请帮我查一下{obj}",
    "订单号是{num}，麻烦看一下{obj}",
    "{obj}需要多长时间？",
    "我想{act}{obj}，需要准备什么？",
    "能不能告诉我{obj}的流程",
    "你们{time}营业吗？",
    "{obj}可以{act}吗？",
    "我{time}下的单，{obj}是多少？",
    "麻烦确认一下{obj}",
    "我已经提交了{obj}，请问下一步是什么",
    "{obj}的联系方式是多少",
    "收到，我{time}再联系你们",
    "好的，我知道了",
    "我的会员号是{num}",
    "请问支持{obj}吗",
    "{obj}是按什么标准收费的？",
)
ZH_OBJ = (
    "发票",
    "退货流程",
    "物流信息",
    "订单状态",
    "会员积分",
    "保修期",
    "安装服务",
    "配送时间",
    "门店地址",
    "优惠券",
    "售后电话",
    "尺码",
    "颜色",
    "账户",
    "密码",
    "预约",
    "退款进度",
    "运费",
    "营业时间",
    "快递单号",
)
ZH_ACT = ("申请", "修改", "查询", "取消", "开具", "办理", "使用", "更换", "预约", "兑换")
ZH_TIME = ("今天", "昨天", "周末", "下周一", "明天上午", "上个月", "晚上", "节假日")

EN_SUBJECTS = (
    "the product",
    "the delivery",
    "customer service",
    "the support agent",
    "the app",
    "the quality",
    "my order",
    "the staff",
    "the food",
    "the room",
    "the checkout process",
    "the refund process",
    "the packaging",
    "the price",
    "your website",
    "the technician",
    "the hotel",
    "the phone",
    "this service",
    "the driver",
    "the installation",
    "the manager",
    "the hotline",
    "the new update",
    "the store",
)
EN_POS_ADJ = (
    "great",
    "excellent",
    "amazing",
    "fantastic",
    "wonderful",
    "perfect",
    "helpful",
    "friendly",
    "fast",
    "quick",
    "reliable",
    "professional",
    "polite",
    "outstanding",
    "superb",
    "impressive",
    "smooth",
    "easy",
    "good",
    "lovely",
    "brilliant",
    "pleasant",
    "efficient",
    "responsive",
    "worth every penny",
    "better than expected",
)
EN_NEG_ADJ = (
    "terrible",
    "awful",
    "horrible",
    "slow",
    "rude",
    "useless",
    "broken",
    "disappointing",
    "poor",
    "bad",
    "unacceptable",
    "frustrating",
    "confusing",
    "unreliable",
    "overpriced",
    "dirty",
    "late",
    "damaged",
    "worse than ever",
    "a nightmare",
    "a joke",
    "a waste of money",
    "unprofessional",
    "unhelpful",
    "buggy",
)
EN_POS_TEMPLATES = (
    "{S} was {pos}.",
    "{S} is really {pos}!",
    "Honestly, {s} was {pos}.",
    "I am very happy with {s}.",
    "Thanks, {s} was {pos}.",
    "I love {s}, it is {pos}.",
    "{S} was {pos} and {pos2}.",
    "Really {pos} experience with {s}.",
    "Five stars, {s} was {pos}.",
    "Would definitely recommend, {s} is {pos}.",
    "{S} exceeded my expectations.",
    "So glad I chose you, {s} was {pos}.",
    "Everything went well and {s} was {pos}.",
    "{S} works perfectly.",
    "The agent solved my problem quickly, {pos} service.",
    "Arrived early and {s} is {pos}.",
)
EN_NEG_TEMPLATES = (
    "{S} was {neg}.",
    "{S} is really {neg}!",
    "Honestly, {s} was {neg}.",
    "I am very unhappy with {s}.",
    "{S} was {neg} and {neg2}.",
    "{S} is not {pos} at all.",
    "I hate {s}, it is {neg}.",
    "Really {neg} experience with {s}.",
    "One star, {s} was {neg}.",
    "Never again, {s} is {neg}.",
    "{S} never arrived.",
    "Still waiting for a refund, {s} is {neg}.",
    "{S} stopped working after two days.",
    "Nobody answered and {s} was {neg}.",
    "I want my money back, {s} was {neg}.",
    "Very disappointed, {s} was {neg}.",
    "{S} was not {pos}, it was {neg}.",
)
EN_NEUTRAL_TEMPLATES = (
    "How do I {act} {obj}?",
    "Can you tell me {info}?",
    "I would like to {act} {obj}.",
    "My order number is {num}.",
    "I placed an order on {day}.",
    "Please send me {obj}.",
    "What are your opening hours on {day}?",
    "Is {item} available in {color}?",
    "The package was delivered on {day}.",
    "I am writing about order {num}.",
    "Please update {obj}.",
    "Do you ship to {place}?",
    "Could you confirm {info}?",
    "I called on {day} about {obj}.",
    "Where can I find {obj}?",
    "When will {obj} be ready?",
    "I need to {act} {obj} before {day}.",
    "Is there a fee to {act} {obj}?",
    "Which documents do I need to {act} {obj}?",
    "I have a question about {obj}.",
    "Noted, I will check {obj} on {day}.",
    "We bought {item} last {day}.",
    "The store is on {place} street.",
)
EN_OBJ = (
    "the invoice",
    "my address",
    "my account",
    "my subscription plan",
    "the warranty",
    "my password",
    "the receipt",
    "the delivery date",
    "my booking",
    "the return label",
    "my payment method",
    "the tracking number",
    "my profile",
)
EN_ACT = ("change", "update", "check", "download", "cancel", "renew", "reset", "book", "return", "transfer")
EN_INFO = (
    "the delivery time",
    "the price of the premium plan",
    "your return policy",
    "the status of my order",
    "the store address",
)
EN_DAY = ("Monday", "Tuesday", "Friday", "Sunday", "March 3", "the weekend", "yesterday")
EN_ITEM = ("this jacket", "the blue model", "the 128 GB version", "the large size", "the charger")
EN_COLOR = ("black", "white", "red", "navy")
EN_PLACE = ("Canada", "Hong Kong", "Taipei", "Berlin", "Main")


def zh_neutral(n: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        t = rng.choice(ZH_NEUTRAL_TEMPLATES)
        out.add(
            t.format(
                obj=rng.choice(ZH_OBJ),
                act=rng.choice(ZH_ACT),
                time=rng.choice(ZH_TIME),
                num=rng.randint(10_000, 99_999_999),
            )
        )
    return sorted(out)


def en_sentences(n_per_class: int, seed: int = 17) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows: set[tuple[str, str]] = set()

    def fill(templates: tuple[str, ...], label: str) -> None:
        count = 0
        tries = 0
        while count < n_per_class and tries < n_per_class * 20:
            tries += 1
            s = rng.choice(EN_SUBJECTS)
            pos, pos2 = rng.sample(EN_POS_ADJ, 2)
            neg, neg2 = rng.sample(EN_NEG_ADJ, 2)
            text = rng.choice(templates).format(
                S=s[0].upper() + s[1:],
                s=s,
                pos=pos,
                pos2=pos2,
                neg=neg,
                neg2=neg2,
                act=rng.choice(EN_ACT),
                obj=rng.choice(EN_OBJ),
                info=rng.choice(EN_INFO),
                num=rng.randint(10_000, 9_999_999),
                day=rng.choice(EN_DAY),
                item=rng.choice(EN_ITEM),
                color=rng.choice(EN_COLOR),
                place=rng.choice(EN_PLACE),
            )
            if (text, label) not in rows:
                rows.add((text, label))
                count += 1

    fill(EN_POS_TEMPLATES, "positive")
    fill(EN_NEG_TEMPLATES, "negative")
    fill(EN_NEUTRAL_TEMPLATES, "neutral")
    return sorted(rows)
