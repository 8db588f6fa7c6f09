import numpy as np
import pytest
import torch

from rnnlab.data import (
    CharTokenizer,
    StreamBatcher,
    WordTokenizer,
    file_corpus,
    load_corpus,
    stream_layout,
    tokenizer_from_dict,
)
from rnnlab.data.corpora import _rechunk, read_blocks


def test_char_round_trip_and_unknown():
    text = "héllo wörld\n€ 𝄞 tab\t"
    tok = CharTokenizer().fit([text])
    assert tok.tokens[0] == "<unk>" and tok.vocab_size == len(set(text)) + 1
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert 0 not in ids
    # unseen characters map to 0 and decode as U+FFFD
    assert tok.encode("hZ") == [tok.encode("h")[0], 0]
    assert tok.decode(tok.encode("hZ")) == "h\ufffd"
    assert tok.unknown_symbols("hZZq") == ["Z", "q"]
    # saved vocabulary restores the same mapping
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(text) == ids


def test_char_encode_blocks_equals_encode_and_is_compact():
    text = "abc def\n" * 50 + "xyz"
    tok = CharTokenizer().fit([text])
    enc = tok.encode_blocks([text[:101], text[101:]], capacity=3)  # capacity hint too low
    assert enc.ids.dtype == torch.uint8 and enc.unknown == 0
    assert enc.ids.tolist() == tok.encode(text)
    big = CharTokenizer([("<unk>")] + [chr(c) for c in range(300, 700)])
    assert big.encode_blocks([chr(300) + "a"]).ids.dtype == torch.int32
    assert big.encode_blocks([chr(300) + "a"]).unknown == 1


def test_word_round_trip_unknown_and_max_size():
    text = "the cat sat on the mat .\nthe dog sat ."
    tok = WordTokenizer(max_size=5).fit([text])
    # most frequent first: the (3), sat (2), . (2), then alphabetical among count 1: \n ...
    assert tok.tokens[:4] == ["<unk>", "the", ".", "sat"]
    assert tok.vocab_size == 5
    full = WordTokenizer().fit([text])
    assert full.decode(full.encode(text)) == "the cat sat on the mat .\nthe dog sat ."
    ids = tok.encode("the zebra sat")
    assert ids[1] == 0 and tok.decode(ids) == "the <unk> sat"
    assert tokenizer_from_dict(full.to_dict()).encode(text) == full.encode(text)


def test_rechunk_cuts_at_whitespace_only():
    pieces = ["hello wo", "rld and", " more", "tail"]
    blocks = list(_rechunk(iter(pieces)))
    assert "".join(blocks) == "".join(pieces)
    assert all(b[-1].isspace() for b in blocks[:-1])


def test_file_corpus_streams_utf8_across_block_boundaries(tmp_path):
    text = "ünïcödé " * 1000 + "€"
    p = tmp_path / "t.txt"
    p.write_text(text, encoding="utf-8")
    # a block size that cuts multi-byte characters in half
    assert "".join(read_blocks(p, block_bytes=7)) == text
    assert file_corpus(p).text() == text


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: d, "directory"),
        (lambda d: (d / "e.txt").write_bytes(b"") or d / "e.txt", "empty"),
    ],
)
def test_bad_files_are_value_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        load_corpus(data=make(tmp_path))


def test_non_utf8_file(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9 ok".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        file_corpus(p).text()


def test_topics_corpus_is_english_prose():
    corpus = load_corpus()
    text = corpus.text()
    assert 400_000 < len(text) < 600_000 and "statement" in text and corpus.meta["python"]


def test_stream_layout_contiguous_streams():
    tokens = torch.arange(23)
    x, y = stream_layout(tokens, 4)  # L = (23 - 1) // 4 = 5
    assert x.shape == (4, 5)
    assert torch.equal(x, torch.arange(20).view(4, 5))  # stream b = tokens b*L .. b*L+L-1
    assert torch.equal(y, x + 1)  # targets are the next tokens
    with pytest.raises(ValueError, match="at least"):
        stream_layout(torch.arange(4), 4)


def test_batcher_chunks_carry_across_boundaries_and_wrap():
    tokens = torch.arange(41, dtype=torch.int32)
    b = StreamBatcher(tokens, batch_size=4, seq_len=3)  # L = 10 -> chunks of 3, 3, 3, 1
    assert b.chunks_per_pass == 4
    chunks = [next(b) for _ in range(5)]
    assert [c.reset for c in chunks] == [True, False, False, False, True]
    assert [c.inputs.shape[1] for c in chunks] == [3, 3, 3, 1, 3]
    assert all(c.inputs.dtype == torch.int64 for c in chunks)
    # concatenating the chunks of a pass gives back each stream: the last input of chunk k
    # (row b) is followed by the first input of chunk k + 1 (row b) in the corpus
    rows = torch.cat([c.inputs for c in chunks[:4]], dim=1)
    assert torch.equal(rows, torch.arange(40).view(4, 10))
    for c1, c2 in zip(chunks[:3], chunks[1:4]):
        assert torch.equal(c1.inputs[:, -1] + 1, c2.inputs[:, 0])
        assert torch.equal(c1.targets[:, -1], c2.inputs[:, 0])
    assert torch.equal(chunks[4].inputs, chunks[0].inputs)
    assert b.epoch == 1 and b.position == 1


def test_batcher_state_round_trip():
    tokens = torch.from_numpy(np.arange(101) % 7)
    a = StreamBatcher(tokens, 3, 4)
    for _ in range(6):
        next(a)
    b = StreamBatcher(tokens, 3, 4)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(next(a).inputs, next(b).inputs) for _ in range(10))
    with pytest.raises(ValueError, match="seq_len"):
        StreamBatcher(tokens, 3, 5).load_state_dict(a.state_dict())


def test_stdlib_corpus_skips_tests_and_site_packages():
    from rnnlab.data.corpora import stdlib_files

    files = stdlib_files()
    assert len(files) > 300 and all(f.suffix == ".py" for f in files)
    parts = {p for f in files for p in f.parts}
    assert not parts & {"test", "tests", "site-packages", "idle_test"}
