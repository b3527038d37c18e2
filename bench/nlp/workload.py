"""A realistic, deterministic length mix of customer feedback in Chinese and English.

- short reviews (~30 tokens): 62 % of the documents
- chat messages (~128 tokens): 35 %
- long call transcripts (~1,000 tokens) cut into ~128-token chunks, as callers send them: 3 % of the
  documents (about a quarter of the texts)
"""

from __future__ import annotations

import random

ZH = [
    "排队等了四十分钟，服务员态度还很差",
    "快递三天就到了，包装完好，很满意",
    "价格有点贵，但是质量确实不错",
    "客服一直不回复，退款到现在还没到账",
    "门店环境干净，店员很热情，下次还来",
    "App 又闪退了，订单提交不了",
    "希望能增加夜间配送的时间段",
    "产品用了两天就坏了，要求换货",
    "会员积分规则太复杂，看不懂",
    "这次的活动力度很大，买了好几件",
]
EN = [
    "the queue took forty minutes and the staff were rude",
    "delivery arrived in two days and the packaging was perfect",
    "a bit expensive but the quality is really good",
    "support never answered and my refund still has not arrived",
    "the store was clean and the staff were friendly, will come back",
    "the app crashed again and I could not place my order",
    "please add an evening delivery slot",
    "the product broke after two days, I want a replacement",
    "the loyalty points rules are far too complicated",
    "great promotion this time, bought several items",
]


def _sentence(rng: random.Random, zh: bool) -> str:
    return rng.choice(ZH) if zh else rng.choice(EN)


def _text(rng: random.Random, zh: bool, tokens: int) -> str:
    # ~1 token per Chinese character, ~1.3 tokens per English word
    parts: list[str] = []
    size = 0
    while size < tokens:
        s = _sentence(rng, zh)
        parts.append(s)
        size += len(s) if zh else int(len(s.split()) * 1.3)
    return ("，".join(parts) + "。") if zh else (". ".join(parts).capitalize() + ".")


def workload(n: int, seed: int = 7) -> tuple[list[str], dict[str, int]]:
    """n texts (after chunking) and how many of each kind."""
    rng = random.Random(seed)
    texts: list[str] = []
    kinds = {"short": 0, "chat": 0, "transcript_chunk": 0}
    while len(texts) < n:
        zh = rng.random() < 0.5
        roll = rng.random()
        if roll < 0.62:
            texts.append(_text(rng, zh, 30))
            kinds["short"] += 1
        elif roll < 0.97:
            texts.append(_text(rng, zh, 128))
            kinds["chat"] += 1
        else:
            transcript = _text(rng, zh, 1000)
            step = 128 if zh else 90 * 6  # ~128 tokens per chunk (chars for Chinese, ~90 words for English)
            chunks = [transcript[i : i + step] for i in range(0, len(transcript), step)]
            texts.extend(chunks)
            kinds["transcript_chunk"] += len(chunks)
    rng.shuffle(texts)
    return texts[:n], kinds
