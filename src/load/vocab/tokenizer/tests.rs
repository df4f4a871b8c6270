//! Unit tests of `tokenizer`.

use super::*;

/// GPT-2's `bytes_to_unicode`, transcribed from its Python source (the
/// forward direction; the module implements the inverse separately).
fn bytes_to_unicode() -> Vec<(u8, char)> {
    let mut bs: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (u8::try_from(b).unwrap(), char::from_u32(c).unwrap()))
        .collect()
}

fn text(v: &Vocab, id: usize) -> &str {
    &v.get(id).unwrap().text
}

fn special(v: &Vocab, id: usize) -> bool {
    v.get(id).unwrap().special
}

const GPT2_JSON: &str = r#"{
    "version": "1.0",
    "added_tokens": [
        {"id": 7, "content": "<|endoftext|>", "special": true},
        {"id": 9, "content": "Ġuser word", "special": false}
    ],
    "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "x"}},
        {"type": "ByteLevel", "add_prefix_space": false}
    ]},
    "decoder": null,
    "model": {"type": "BPE", "vocab": {
        "Ġhello": 0, "Ċ": 1, "âĢĶ": 2, "æ": 3, "æĪ": 4, "Ġæĺ¯": 5, "a€b": 6,
        "<|endoftext|>": 7, "ĠĠ": 8, "ĉ": 10, "ÃŃ": 11
    }}
}"#;

#[test]
fn byte_level_bpe_reads_bytes_through_gpt2_table() {
    let v = Vocab::from_tokenizer_json(GPT2_JSON.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::ByteLevelBpe);
    assert_eq!(v.vocab_size(), 12);
    assert_eq!(text(&v, 0), " hello");
    assert_eq!(text(&v, 1), "\n");
    // â = 0xE2, Ģ = U+0122 = 256+34 -> 0x80, Ķ = U+0136 = 256+54 -> 0x94.
    assert_eq!(text(&v, 2), "\u{2014}");
    // A lone lead byte of a three-byte sequence.
    assert_eq!(text(&v, 3), "<0xE6>");
    // æ Ī = E6 88: a truncated sequence, one <0xNN> per byte.
    assert_eq!(text(&v, 4), "<0xE6><0x88>");
    // Ġ æ ĺ ¯ = 20 E6 98 AF = " 是" (U+662F).
    assert_eq!(text(&v, 5), " \u{662F}");
    // € (U+20AC) is outside the table and kept; a and b around it read as bytes.
    assert_eq!(text(&v, 6), "a\u{20AC}b");
    assert_eq!(text(&v, 7), "<|endoftext|>");
    assert!(special(&v, 7));
    assert_eq!(text(&v, 8), "  ");
    // Added tokens keep their content verbatim (no Ġ decoding).
    assert_eq!(text(&v, 9), "Ġuser word");
    assert!(!special(&v, 9));
    // ĉ = U+0109 -> byte 9, a tab.
    assert_eq!(text(&v, 10), "\t");
    // Ã Ń = C3 AD: "í" (U+00ED); Ń = U+0143 is the table's last char, byte 173 = 0xAD.
    assert_eq!(text(&v, 11), "\u{ED}");
    assert!(!special(&v, 0));
    assert!(v.get(12).is_none());
}

#[test]
fn every_byte_reads_back_through_the_forward_table() {
    let table = bytes_to_unicode();
    assert_eq!(table.len(), 256);
    for (b, c) in table {
        assert_eq!(gpt2_byte(c), Some(b), "char {c:?}");
        let want = if b.is_ascii() {
            char::from(b).to_string()
        } else {
            format!("<0x{b:02X}>")
        };
        assert_eq!(byte_level(&c.to_string()), want);
    }
    assert_eq!(gpt2_byte('\u{144}'), None);
    assert_eq!(gpt2_byte(' '), None);
    assert_eq!(gpt2_byte('\u{AD}'), None);
}

#[test]
fn byte_level_found_in_a_nested_decoder() {
    let j = r#"{"decoder": {"type": "Sequence", "decoders": [{"type": "ByteLevel"}]},
                "model": {"type": "BPE", "vocab": {"Ġx": 0}}}"#;
    let v = Vocab::from_tokenizer_json(j.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::ByteLevelBpe);
    assert_eq!(text(&v, 0), " x");
}

#[test]
fn sentencepiece_bpe_like_llama2() {
    let j = r#"{
        "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true},
            {"id": 1, "content": "<s>", "special": true}
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}
        ]},
        "model": {"type": "BPE", "byte_fallback": true, "vocab": {
            "<unk>": 0, "<s>": 1, "<0x0A>": 2, "<0x41>": 3, "<0xE6>": 4,
            "▁the": 5, "▁▁": 6, "ing": 7, "<0x4>": 8, "<0xzz>": 9
        }}
    }"#;
    let v = Vocab::from_tokenizer_json(j.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::SentencePiece);
    assert_eq!(v.vocab_size(), 10);
    assert_eq!(text(&v, 0), "<unk>");
    assert!(special(&v, 0) && special(&v, 1));
    assert_eq!(text(&v, 2), "\n");
    assert_eq!(text(&v, 3), "A");
    assert_eq!(text(&v, 4), "<0xE6>");
    assert_eq!(text(&v, 5), " the");
    assert_eq!(text(&v, 6), "  ");
    assert_eq!(text(&v, 7), "ing");
    assert!(!special(&v, 5));
    // Not byte tokens: one hex digit, non-hex digits.
    assert_eq!(text(&v, 8), "<0x4>");
    assert_eq!(text(&v, 9), "<0xzz>");
}

#[test]
fn sentencepiece_from_metaspace_or_unigram() {
    let meta = r#"{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"},
                   "model": {"type": "BPE", "vocab": {"▁a": 0}}}"#;
    let v = Vocab::from_tokenizer_json(meta.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::SentencePiece);
    assert_eq!(text(&v, 0), " a");

    // Unigram (T5): a list of [piece, score], id = position.
    let uni = r#"{"added_tokens": [{"id": 0, "content": "<pad>", "special": true}],
                  "model": {"type": "Unigram", "unk_id": 2, "vocab": [
                    ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["▁", -2.0], ["▁of", -3.5], ["s", -4.0]
                  ]}}"#;
    let v = Vocab::from_tokenizer_json(uni.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::SentencePiece);
    assert_eq!(v.vocab_size(), 6);
    assert!(special(&v, 0));
    assert!(!special(&v, 1));
    assert_eq!(text(&v, 3), " ");
    assert_eq!(text(&v, 4), " of");
    assert_eq!(text(&v, 5), "s");
}

#[test]
fn wordpiece_and_plain_keep_strings() {
    let wp = r###"{"added_tokens": [{"id": 0, "content": "[PAD]", "special": true}],
                 "normalizer": {"type": "BertNormalizer"},
                 "pre_tokenizer": {"type": "BertPreTokenizer"},
                 "decoder": {"type": "WordPiece", "prefix": "##"},
                 "model": {"type": "WordPiece", "unk_token": "[UNK]",
                           "vocab": {"[PAD]": 0, "the": 1, "##ing": 2, "▁x": 3}}}"###;
    let v = Vocab::from_tokenizer_json(wp.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::WordPiece);
    assert_eq!(text(&v, 2), "##ing");
    assert_eq!(text(&v, 3), "▁x");
    assert!(special(&v, 0) && !special(&v, 1));

    let wl = r#"{"model": {"type": "WordLevel", "vocab": {"Ġa": 0, "▁b": 1}}}"#;
    let v = Vocab::from_tokenizer_json(wl.as_bytes()).unwrap();
    assert_eq!(v.kind, VocabKind::Plain);
    assert_eq!(text(&v, 0), "Ġa");
    assert_eq!(text(&v, 1), "▁b");
}

#[test]
fn added_tokens_extend_past_the_vocab_and_ids_may_skip() {
    let j = r#"{"added_tokens": [{"id": 4000000000, "content": "<far>", "special": true},
                                 {"id": 1, "content": "<new>"}],
                "model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1}}}"#;
    let v = Vocab::from_tokenizer_json(j.as_bytes()).unwrap();
    assert_eq!(v.vocab_size(), 4_000_000_001);
    assert_eq!(text(&v, 4_000_000_000), "<far>");
    assert!(special(&v, 4_000_000_000));
    // Overridden at id 1, not special when the field is absent.
    assert_eq!(text(&v, 1), "<new>");
    assert!(!special(&v, 1));
    assert!(v.get(2).is_none());
    assert!(v.get(usize::MAX).is_none());
}

#[test]
fn duplicate_ids_the_later_entry_wins() {
    let j = r#"{"model": {"type": "WordLevel", "vocab": {"z": 0, "a": 0, "a": 1}}}"#;
    let v = Vocab::from_tokenizer_json(j.as_bytes()).unwrap();
    // File order, not key order: "a" came after "z" for id 0.
    assert_eq!(text(&v, 0), "a");
    assert_eq!(text(&v, 1), "a");
}

#[test]
fn bad_ids_are_errors_naming_them() {
    for (id, shown) in [
        ("4294967296", "4294967296"),
        ("-1", "-1"),
        ("1.5", "1.5"),
        ("\"7\"", "\"7\""),
        ("null", "null"),
    ] {
        let j = format!(r#"{{"model": {{"type": "BPE", "vocab": {{"a\nb": {id}}}}}}}"#);
        let e = Vocab::from_tokenizer_json(j.as_bytes()).unwrap_err();
        assert!(e.contains(&format!("id {shown},")), "{e}");
        assert!(e.contains(r#""a\nb""#), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let j = format!(
            r#"{{"added_tokens": [{{"id": {id}, "content": "<x>"}}], "model": {{"vocab": {{}}}}}}"#
        );
        let e = Vocab::from_tokenizer_json(j.as_bytes()).unwrap_err();
        assert!(
            e.contains(&format!("id {shown},")) && e.contains("<x>"),
            "{e}"
        );
    }
    // A byte-order mark is skipped.
    let v = Vocab::from_tokenizer_json("\u{FEFF}{\"model\": {\"vocab\": {\"a\": 0}}}".as_bytes())
        .unwrap();
    assert_eq!(text(&v, 0), "a");
    // The largest id is fine.
    let j = r#"{"model": {"vocab": {"a": 4294967295}}}"#;
    let v = Vocab::from_tokenizer_json(j.as_bytes()).unwrap();
    assert_eq!(v.vocab_size(), 1 << 32);
}

#[test]
fn malformed_json_is_a_one_line_error() {
    for j in [
        "",
        "{",
        "[1, 2]",
        "{\"model\": {\"vocab\": {\"a\": 0}}",
        "{\"model\": {\"vocab\": 3}}",
        "{\"model\": {\"vocab\": [[1, 0.0]]}}",
        "{\"model\": {\"vocab\": [\"a\"]}}",
        "{\"model\": {\"type\": \"BPE\"}}",
        "{\"version\": \"1.0\"}",
        "{\"model\": {\"vocab\": {}}}",
        "{\"added_tokens\": [{\"id\": 0}], \"model\": {\"vocab\": {\"a\": 0}}}",
        "\u{FEFF}{}",
        "\u{FEFF}",
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 0, \"content\": \"x\", \"special\": \"yes\"}]}",
    ] {
        let e = Vocab::from_tokenizer_json(j.as_bytes()).unwrap_err();
        assert!(!e.is_empty() && !e.contains('\n'), "{j}: {e}");
    }
    // Invalid UTF-8 inside a string.
    let e = Vocab::from_tokenizer_json(b"{\"model\": {\"vocab\": {\"\xff\": 0}}}").unwrap_err();
    assert!(!e.contains('\n'));
    // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
    let deep = format!(
        "{{\"decoder\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(Vocab::from_tokenizer_json(deep.as_bytes()).is_err());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let full = GPT2_JSON.trim_end().as_bytes();
    for n in 0..full.len() {
        assert!(Vocab::from_tokenizer_json(&full[..n]).is_err(), "{n} bytes");
        // Truncated mid-char or not, a vocab.txt reads or fails cleanly.
        let _ = Vocab::from_vocab_txt(&full[..n]);
    }
    assert!(Vocab::from_tokenizer_json(full).is_ok());
}

#[test]
fn vocab_txt_lines_and_bracketed_specials() {
    let v = Vocab::from_vocab_txt(b"[PAD]\n[unused0]\r\nthe\n##ing\n\n[CLS]\n[]\n[a b]\n").unwrap();
    assert_eq!(v.kind, VocabKind::WordPiece);
    assert_eq!(v.vocab_size(), 8);
    let want = [
        ("[PAD]", true),
        ("[unused0]", false),
        ("the", false),
        ("##ing", false),
        ("", false),
        ("[CLS]", true),
        ("[]", false),
        ("[a b]", false),
    ];
    for (id, (t, s)) in want.iter().enumerate() {
        assert_eq!(text(&v, id), *t, "id {id}");
        assert_eq!(special(&v, id), *s, "id {id}");
    }
    // No final newline, and a byte-order mark.
    let v = Vocab::from_vocab_txt(b"\xEF\xBB\xBFa\nb").unwrap();
    assert_eq!(v.vocab_size(), 2);
    assert_eq!(text(&v, 0), "a");
    assert_eq!(text(&v, 1), "b");
    assert!(Vocab::from_vocab_txt(b"").is_err());
    let e = Vocab::from_vocab_txt(b"ok\nb\xffad\n").unwrap_err();
    assert!(e.contains("line 2") && e.contains("byte 2"), "{e}");
}

#[test]
fn gguf_kinds_and_token_types() {
    let toks = |s: &[&str]| s.iter().map(|t| t.to_string()).collect::<Vec<_>>();

    let v = Vocab::from_gguf(
        "llama",
        toks(&[
            "<unk>",
            "<s>",
            "<0x0A>",
            "<0xE6>",
            "▁the",
            "<0x41>",
            "<user▁x>",
            "<unused▁>",
        ]),
        Some(&[2, 3, 6, 6, 1, 1, 4, 5]),
    )
    .unwrap();
    assert_eq!(v.kind, VocabKind::SentencePiece);
    assert_eq!(v.vocab_size(), 8);
    assert_eq!(text(&v, 0), "<unk>");
    assert!(!special(&v, 0), "unknown is not control");
    assert!(special(&v, 1));
    assert_eq!(text(&v, 2), "\n");
    assert_eq!(text(&v, 3), "<0xE6>");
    assert_eq!(text(&v, 4), " the");
    assert_eq!(text(&v, 5), "A");
    // User-defined and unused tokens are verbatim.
    assert_eq!(text(&v, 6), "<user▁x>");
    assert_eq!(text(&v, 7), "<unused▁>");
    assert!(!special(&v, 6) && !special(&v, 7));

    let v = Vocab::from_gguf(
        "gpt2",
        toks(&["Ġhello", "<|endoftext|>", "æ", "Ġĉ"]),
        Some(&[1, 3, 1, 4]),
    )
    .unwrap();
    assert_eq!(v.kind, VocabKind::ByteLevelBpe);
    assert_eq!(text(&v, 0), " hello");
    assert!(special(&v, 1));
    assert_eq!(text(&v, 2), "<0xE6>");
    assert_eq!(text(&v, 3), "Ġĉ");

    // Without token types every token is normal.
    let v = Vocab::from_gguf("gpt2", toks(&["Ċ", "ĠĠ"]), None).unwrap();
    assert_eq!(text(&v, 0), "\n");
    assert_eq!(text(&v, 1), "  ");
    assert!(!special(&v, 0));

    let v = Vocab::from_gguf("bert", toks(&["[PAD]", "▁the", "ing"]), Some(&[3, 1, 1])).unwrap();
    assert_eq!(v.kind, VocabKind::WordPiece);
    assert!(special(&v, 0));
    assert_eq!(text(&v, 1), " the");
    assert_eq!(text(&v, 2), "ing");

    let v = Vocab::from_gguf("rwkv", toks(&["▁a", "Ġb"]), None).unwrap();
    assert_eq!(v.kind, VocabKind::Plain);
    assert_eq!(text(&v, 0), "▁a");
    assert_eq!(text(&v, 1), "Ġb");

    let e = Vocab::from_gguf("llama", toks(&["a", "b"]), Some(&[1])).unwrap_err();
    assert!(e.contains("1 entries") && e.contains("has 2"), "{e}");
    assert!(Vocab::from_gguf("llama", vec![], None).is_err());
}
