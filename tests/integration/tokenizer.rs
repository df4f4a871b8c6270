//! Token vocabularies read from real tokenizer files (fetched by
//! `bash scripts/fetch_realdata.sh` into `$SG_REALDATA`, default
//! `~/.cache/singularity-gpu/realdata`), checked against values computed here
//! from the raw files: serde_json over the Llama-2 tokenizer.json, plain line
//! splitting over BERT's vocab.txt. Missing files skip locally and fail under CI=true.

use crate::common::{fetched, require};
use serde_json::Value;
use singularity_gpu::load::Vocab;
use singularity_gpu::types::VocabKind;

#[test]
fn llama2_tokenizer_json_reads_as_sentencepiece() {
    let path = fetched().join("wordllama_llama2_tokenizer.json");
    if !require(&path) {
        return;
    }
    let bytes = std::fs::read(&path).unwrap();
    let v = Vocab::from_tokenizer_json(&bytes).unwrap();
    assert_eq!(v.kind, VocabKind::SentencePiece);
    assert_eq!(v.vocab_size(), 32000);

    let raw: Value = serde_json::from_slice(&bytes).unwrap();
    let vocab = raw["model"]["vocab"].as_object().unwrap();
    let id_of = |piece: &str| vocab[piece].as_u64().unwrap() as usize;
    let piece_of = |id: u64| {
        vocab
            .iter()
            .find(|(_, v)| v.as_u64() == Some(id))
            .map(|(k, _)| k.as_str())
            .unwrap()
    };

    let the = id_of("\u{2581}the");
    assert_eq!(v.get(the).unwrap().text, " the");
    assert!(!v.get(the).unwrap().special);
    assert_eq!(piece_of(13), "<0x0A>");
    assert_eq!(v.get(13).unwrap().text, "\n");
    assert_eq!(piece_of(3), "<0x00>");
    assert_eq!(v.get(3).unwrap().text, "\0");
    // Byte tokens 0x80..=0xFF stay in SentencePiece notation.
    let e6 = id_of("<0xE6>");
    assert_eq!(v.get(e6).unwrap().text, "<0xE6>");

    // The specials are exactly the added tokens marked special, at their ids.
    let added = raw["added_tokens"].as_array().unwrap();
    assert_eq!(added.len(), 3);
    for a in added {
        let id = a["id"].as_u64().unwrap() as usize;
        assert!(a["special"].as_bool().unwrap());
        assert_eq!(v.get(id).unwrap().text, a["content"].as_str().unwrap());
        assert!(v.get(id).unwrap().special);
    }
    for (id, want) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        assert_eq!(v.get(id).unwrap().text, *want);
        assert!(v.get(id).unwrap().special);
    }

    // Every other piece: ▁ is a space, a <0xNN> with NN < 0x80 is that byte.
    let mut checked = 0;
    for (piece, id) in vocab {
        let id = id.as_u64().unwrap();
        if id < 3 {
            continue;
        }
        let want = match piece
            .strip_prefix("<0x")
            .and_then(|h| h.strip_suffix('>'))
            .map(|h| u8::from_str_radix(h, 16).unwrap())
        {
            Some(b) if b < 0x80 => (b as char).to_string(),
            Some(_) => piece.clone(),
            None => piece.replace('\u{2581}', " "),
        };
        let t = v.get(id as usize).unwrap();
        assert_eq!(t.text, want, "id {id}");
        assert!(!t.special, "id {id}");
        checked += 1;
    }
    assert_eq!(checked, 31997);
}

#[test]
fn minilm_vocab_txt_reads_as_wordpiece() {
    let path = fetched().join("minilm_l6_v2_vocab.txt");
    if !require(&path) {
        return;
    }
    let bytes = std::fs::read(&path).unwrap();
    let v = Vocab::from_vocab_txt(&bytes).unwrap();
    assert_eq!(v.kind, VocabKind::WordPiece);
    assert_eq!(v.vocab_size(), 30522);

    let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
    assert_eq!(lines.len(), 30522);
    assert_eq!(lines[0], "[PAD]");
    assert_eq!(lines[1], "[unused0]");
    for (id, line) in lines.iter().enumerate() {
        let t = v.get(id).unwrap();
        assert_eq!(t.text, *line, "id {id}");
        // BERT's five special tokens; [unusedN] are ordinary pieces.
        let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].contains(line);
        assert_eq!(t.special, special, "id {id} {line:?}");
    }
    assert!(v.get(0).unwrap().special);
    assert!(!v.get(1).unwrap().special);
    let cls = lines.iter().position(|l| *l == "[CLS]").unwrap();
    assert!(v.get(cls).unwrap().special);
    let ing = lines.iter().position(|l| *l == "##ing").unwrap();
    assert_eq!(v.get(ing).unwrap().text, "##ing");
    assert!(!v.get(ing).unwrap().special);
    assert!(v.get(30522).is_none());
}
