"""Tiny randomly initialised models with tokenizers trained on the spot, for fast tests, benchmarks
and the causal-LM example: a real architecture and a real tokenizer, no download."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from ftray.models import quiet_transformers

Architecture = Literal["bert", "llama"]


def build_tokenizer(texts: Iterable[str], architecture: Architecture, vocab_size: int = 2000):
    """A WordPiece tokenizer with BERT's special tokens, or a byte-level BPE one for decoders."""
    if architecture == "bert":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer: trainers.Trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials
        )
        tokenizer.train_from_iterator(texts, trainer)
        cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
            model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        )
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )


def build_tiny_model(
    directory: str | Path,
    texts: Iterable[str],
    architecture: Architecture = "bert",
    hidden_size: int = 32,
    layers: int = 2,
    seed: int = 0,
    initializer_range: float = 0.02,
    heads: int = 2,
) -> Path:
    """Save a random `architecture` model and its tokenizer as a transformers directory."""
    quiet_transformers()
    directory = Path(directory)
    tokenizer = build_tokenizer(texts, architecture)
    torch.manual_seed(seed)
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": hidden_size * 2,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "initializer_range": initializer_range,
    }
    if architecture == "bert":
        model: PreTrainedModel = BertModel(BertConfig(**common))
    else:
        config = LlamaConfig(
            **common,
            num_key_value_heads=heads,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
