from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cx_nlp.models.api import Pipeline, load_pipeline
from cx_nlp.models.build import build_default_model, model_is_built

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def tiny() -> Pipeline:
    return load_pipeline(None)


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, built once per session (reuses <repo>/.cx/models/default when it is already built)."""
    shared = REPO / ".cx" / "models" / "default"
    if model_is_built(shared):
        return shared
    if shared.parent.is_dir():
        build_default_model(shared, progress=False)
        return shared
    return build_default_model(tmp_path_factory.mktemp("cx-model") / "default", progress=False)


@pytest.fixture(scope="session")
def default(default_model_dir: Path) -> Pipeline:
    return load_pipeline(default_model_dir)


TinyBert = Callable[[Path, "dict[int, str] | None"], Path]


def build_tiny_bert(path: Path, labels: dict[int, str] | None) -> Path:
    """A 1-layer BERT with 64 positions and a 15-token vocabulary saved to `path` (an encoder, or a classifier with
    `labels`): a local Hugging Face directory built in code."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

    vocab = {
        tok: i
        for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"物流太慢好快", "good", "bad", "slow"])
    }
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    import torch

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    if labels is None:
        model = BertModel(config)
    else:
        config.num_labels = len(labels)
        config.id2label = labels
        config.label2id = {v: k for k, v in labels.items()}
        model = BertForSequenceClassification(config)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert() -> TinyBert:
    """`tiny_bert(path, labels)`: see `build_tiny_bert`."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_bert
