"""Tokenizers, text corpora and stream batching for truncated BPTT."""

from rnnlab.data.corpora import (
    Corpus,
    check_text_file,
    file_corpus,
    load_corpus,
    stdlib_corpus,
    topics_corpus,
)
from rnnlab.data.streams import StreamBatch, StreamBatcher, stream_layout
from rnnlab.data.tokenizers import (
    UNK,
    CharTokenizer,
    Encoded,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_dict,
)

__all__ = [
    "UNK",
    "CharTokenizer",
    "Corpus",
    "Encoded",
    "StreamBatch",
    "StreamBatcher",
    "WordTokenizer",
    "check_text_file",
    "file_corpus",
    "load_corpus",
    "make_tokenizer",
    "stdlib_corpus",
    "stream_layout",
    "tokenizer_from_dict",
    "topics_corpus",
]
