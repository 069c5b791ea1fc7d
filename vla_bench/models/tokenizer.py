"""Tokenizers: loading a checkpoint's tokenizer files, and building a tiny word-level tokenizer
locally (no downloads) for the random-weight test checkpoints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from vla_bench.errors import VlaBenchError

TOKENIZER_FILE = "tokenizer.json"
PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"


def words_of(texts: Iterable[str]) -> list[str]:
    """Sorted unique lower-case words and punctuation marks of `texts`."""
    found: set[str] = set()
    for text in texts:
        found.update(re.findall(r"\w+|[^\w\s]", text.lower()))
    return sorted(found)


def build_word_tokenizer(words: Sequence[str], special_tokens: Sequence[str], wrap: bool):
    """A lower-casing word-level tokenizer over `words`; `wrap` adds start/end tokens around each text.

    Returns a transformers PreTrainedTokenizerFast (save it with save_pretrained).
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, UNK, BOS, EOS] + [t for t in special_tokens if t not in (PAD, UNK, BOS, EOS)]
    vocab = {token: i for i, token in enumerate(specials)}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if wrap:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[t for t in specials if t not in (PAD, UNK, BOS, EOS)],
    )
    return fast


def load_tokenizer(path: Path):
    """The tokenizer saved in a checkpoint directory."""
    from transformers import PreTrainedTokenizerFast

    if not (Path(path) / TOKENIZER_FILE).is_file():
        raise VlaBenchError(f"checkpoint {path}: missing {TOKENIZER_FILE}")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def build_bpe_tokenizer(corpus: Sequence[str], vocab_size: int, special_tokens: Sequence[str], pad: str, eos: str):
    """A byte-level BPE tokenizer (Qwen2's kind: spaces are part of tokens, a lone space is a token)
    trained on `corpus`; deterministic for the same inputs. No BOS, as Qwen2's tokenizer.

    Returns a transformers PreTrainedTokenizerFast (save it with save_pretrained).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([pad, eos, *special_tokens]))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(corpus), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, eos_token=eos,
        additional_special_tokens=[t for t in specials if t not in (pad, eos)],
    )
