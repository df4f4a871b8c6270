//! Token vocabularies: the string a person reads for each token id, from a
//! Hugging Face `tokenizer.json`, a BERT `vocab.txt`, or a GGUF file's
//! tokenizer metadata, without a tokenizer runtime.
//!
//! How each kind is read:
//! - byte-level BPE (GPT-2, Qwen, Llama-3): every char of a token stands for
//!   one byte through GPT-2's `bytes_to_unicode` table (`Ġ` is a space, `Ċ` a
//!   newline); the bytes are read as UTF-8, and a byte that is not part of a
//!   valid UTF-8 sequence (half of a CJK character, say) is written `<0xNN>`.
//!   A char outside the table is kept as it is.
//! - SentencePiece (Llama-2, Gemma, T5): `▁` is a space; a byte-fallback token
//!   `<0xNN>` is its byte where that byte is ASCII, and stays `<0xNN>` otherwise.
//! - WordPiece and plain vocabularies: tokens as they are (`##ing` stays `##ing`).
//!
//! Everything here parses user files, so nothing panics on bad input and no
//! container is sized by a number read from the file: tokens live in a map
//! keyed by id, whatever the largest id is. When two entries give the same id
//! the later one wins (later in the file; `added_tokens` after `model.vocab`),
//! as Hugging Face's own added tokens replace vocabulary entries at their ids.
//! Errors are one sentence on one line; the caller names the file.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::escape::quoted;
use crate::types::VocabKind;

/// SentencePiece's word-boundary mark, which stands for a space.
const META_SPACE: char = '\u{2581}';

/// One token as a person reads it.
#[derive(Clone, Debug)]
pub struct Token {
    /// The decoded string (special and added tokens verbatim).
    pub text: String,
    /// A special token: an added token marked special, a `[XXX]` entry of a
    /// `vocab.txt`, or a GGUF control token.
    pub special: bool,
}

/// A tokenizer's tokens keyed by id; ids need not be contiguous.
#[derive(Clone, Debug)]
pub struct Vocab {
    /// How the token strings were decoded.
    pub kind: VocabKind,
    tokens: BTreeMap<u32, Token>,
}

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
mod gguf_type {
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

impl Vocab {
    /// A Hugging Face `tokenizer.json`: `model.vocab` as a map from token to
    /// id (BPE, WordPiece, WordLevel) or Unigram's list of `[piece, score]`
    /// (id = position), then `added_tokens`, which replace or extend the
    /// vocabulary at their ids with their `content` verbatim and their
    /// `special` flag. The kind comes from the pre-tokenizer, decoder,
    /// normalizer and model type (see [`VocabKind`]).
    pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Vocab, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let file: TokenizerFile = serde_json::from_slice(bytes)
            .map_err(|e| one_line(format!("the tokenizer JSON does not parse: {e}")))?;
        let model = file
            .model
            .ok_or("the tokenizer JSON has no \"model\" section")?;
        let vocab = model
            .vocab
            .ok_or("the tokenizer JSON's model has no \"vocab\"")?;
        let kind = json_kind(
            model.kind.as_deref(),
            &file.normalizer,
            &file.pre_tokenizer,
            &file.decoder,
        );
        let mut tokens = BTreeMap::new();
        match vocab {
            RawVocab::Map(entries) => {
                for (piece, id) in entries {
                    let id = json_id(&id, &piece)?;
                    let text = decode(kind, &piece);
                    tokens.insert(
                        id,
                        Token {
                            text,
                            special: false,
                        },
                    );
                }
            }
            RawVocab::List(entries) => {
                for (i, entry) in entries.into_iter().enumerate() {
                    let id = u32::try_from(i)
                        .map_err(|_| "the tokenizer JSON's model.vocab has over 2^32 entries")?;
                    let piece = match &entry {
                        Value::Array(pair) => pair.first().and_then(Value::as_str),
                        _ => None,
                    }
                    .ok_or_else(|| format!("model.vocab entry {i} is not a [piece, score] pair"))?;
                    tokens.insert(
                        id,
                        Token {
                            text: decode(kind, piece),
                            special: false,
                        },
                    );
                }
            }
        }
        for added in file.added_tokens.unwrap_or_default() {
            let id = json_id(&added.id, &added.content)?;
            tokens.insert(
                id,
                Token {
                    text: added.content,
                    special: added.special,
                },
            );
        }
        Vocab::new(kind, tokens)
    }

    /// BERT's `vocab.txt`: one token per line, id = line number from 0, the
    /// line ending (`\n` or `\r\n`) not part of the token, a leading UTF-8
    /// byte-order mark skipped. Tokens of the form `[XXX]` (`[PAD]`, `[CLS]`)
    /// are special, but for BERT's `[unusedN]` pieces.
    pub fn from_vocab_txt(bytes: &[u8]) -> Result<Vocab, String> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.is_empty() {
            return Err("the vocabulary file is empty".into());
        }
        // A final newline ends the last line rather than starting an empty one.
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let mut tokens = BTreeMap::new();
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            let id = u32::try_from(i).map_err(|_| "the vocabulary file has over 2^32 lines")?;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line).map_err(|e| {
                format!(
                    "line {} of the vocabulary file is not UTF-8 (byte {} of the line)",
                    u64::from(id) + 1,
                    e.valid_up_to() + 1
                )
            })?;
            tokens.insert(
                id,
                Token {
                    text: text.to_owned(),
                    special: bracketed(text),
                },
            );
        }
        Vocab::new(VocabKind::WordPiece, tokens)
    }

    /// GGUF metadata: `tokenizer.ggml.model` (`"gpt2"`: byte-level BPE;
    /// `"llama"` and `"t5"`: SentencePiece; `"bert"`: WordPiece; anything
    /// else: plain), `tokenizer.ggml.tokens` (id = index) and the optional
    /// `tokenizer.ggml.token_type`, which must have one entry per token.
    ///
    /// As llama.cpp reads them: normal tokens (type 1, or any type outside
    /// 2..=6) are decoded by the kind; unknown (2), control (3), user-defined
    /// (4) and unused (5) tokens are kept verbatim, and only control tokens
    /// are special; byte tokens (6) follow the `<0xNN>` rule. GGUF's converter
    /// writes BERT vocabularies with `▁` for a word start (and no `##`), so
    /// `"bert"` tokens read `▁` as a space.
    pub fn from_gguf(
        model: &str,
        tokens: Vec<String>,
        token_types: Option<&[i32]>,
    ) -> Result<Vocab, String> {
        let kind = match model {
            "gpt2" => VocabKind::ByteLevelBpe,
            "llama" | "t5" => VocabKind::SentencePiece,
            "bert" => VocabKind::WordPiece,
            _ => VocabKind::Plain,
        };
        if let Some(types) = token_types {
            if types.len() != tokens.len() {
                return Err(format!(
                    "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                    types.len(),
                    tokens.len()
                ));
            }
        }
        let mut map = BTreeMap::new();
        for (i, text) in tokens.into_iter().enumerate() {
            let id = u32::try_from(i).map_err(|_| "tokenizer.ggml.tokens has over 2^32 entries")?;
            let ty = token_types.and_then(|t| t.get(i).copied()).unwrap_or(1);
            let token = match ty {
                gguf_type::BYTE => Token {
                    text: byte_fallback(&text).unwrap_or(text),
                    special: false,
                },
                gguf_type::UNKNOWN
                | gguf_type::CONTROL
                | gguf_type::USER_DEFINED
                | gguf_type::UNUSED => Token {
                    text,
                    special: ty == gguf_type::CONTROL,
                },
                _ => Token {
                    text: match kind {
                        VocabKind::WordPiece => text.replace(META_SPACE, " "),
                        _ => decode(kind, &text),
                    },
                    special: false,
                },
            };
            map.insert(id, token);
        }
        Vocab::new(kind, map)
    }

    fn new(kind: VocabKind, tokens: BTreeMap<u32, Token>) -> Result<Vocab, String> {
        if tokens.is_empty() {
            return Err("the vocabulary has no tokens".into());
        }
        Ok(Vocab { kind, tokens })
    }

    /// The largest id plus one, over every token (vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.tokens
            .last_key_value()
            .map_or(0, |(&id, _)| (id as usize).saturating_add(1))
    }

    /// True for a byte vocabulary: at most 256 tokens, ids 0, 1, 2, … with
    /// no gap, each token the one byte of its id (read as the character of
    /// that code, or U+FFFD where a decoder could not make one of it).
    pub fn is_byte_vocabulary(&self) -> bool {
        self.tokens.len() <= 256
            && self.tokens.iter().enumerate().all(|(i, (&id, t))| {
                let mut chars = t.text.chars();
                let one = chars.next();
                id as usize == i
                    && chars.next().is_none()
                    && (one == Some(char::from(i as u8)) || (i >= 128 && one == Some('\u{FFFD}')))
            })
    }

    /// The token with this id, if the tokenizer has one.
    pub fn get(&self, id: usize) -> Option<&Token> {
        self.tokens.get(&u32::try_from(id).ok()?)
    }
}

/// A `tokenizer.json` as far as reading token strings needs it; other
/// fields are ignored.
#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    model: Option<ModelSection>,
    #[serde(default)]
    added_tokens: Option<Vec<AddedToken>>,
    #[serde(default)]
    normalizer: Value,
    #[serde(default)]
    pre_tokenizer: Value,
    #[serde(default)]
    decoder: Value,
}

#[derive(Deserialize)]
struct ModelSection {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    vocab: Option<RawVocab>,
}

/// An added token; its id is checked after parsing so the error can name it.
#[derive(Deserialize)]
struct AddedToken {
    id: Value,
    content: String,
    #[serde(default)]
    special: bool,
}

/// `model.vocab` in file order: a map's entries (so that a later duplicate id
/// wins whatever the JSON map type keeps), or Unigram's list.
enum RawVocab {
    Map(Vec<(String, Value)>),
    List(Vec<Value>),
}

impl<'de> Deserialize<'de> for RawVocab {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVocabVisitor;
        impl<'de> Visitor<'de> for RawVocabVisitor {
            type Value = RawVocab;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from token to id or a list of [piece, score]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawVocab, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(RawVocab::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawVocab, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<Value>()? {
                    entries.push(entry);
                }
                Ok(RawVocab::List(entries))
            }
        }
        d.deserialize_any(RawVocabVisitor)
    }
}

/// The kind of a `tokenizer.json`: a `ByteLevel` pre-tokenizer or decoder
/// makes it byte-level BPE; a `Metaspace` one, a decoder replacing `▁` with a
/// space, a normalizer prepending or substituting `▁`, or a Unigram model
/// makes it SentencePiece; a WordPiece model WordPiece; anything else plain.
fn json_kind(model: Option<&str>, normalizer: &Value, pre: &Value, decoder: &Value) -> VocabKind {
    let has_type = |v: &Value, t: &str| any_object(v, &|o| type_is(o, t));
    if has_type(pre, "ByteLevel") || has_type(decoder, "ByteLevel") {
        return VocabKind::ByteLevelBpe;
    }
    let meta = META_SPACE.to_string();
    let replaces_meta = |o: &serde_json::Map<String, Value>| {
        type_is(o, "Replace")
            && o.get("pattern")
                .and_then(|p| p.get("String"))
                .and_then(Value::as_str)
                == Some(meta.as_str())
            && o.get("content").and_then(Value::as_str) == Some(" ")
    };
    let writes_meta = |o: &serde_json::Map<String, Value>| {
        (type_is(o, "Prepend") && o.get("prepend").and_then(Value::as_str) == Some(meta.as_str()))
            || (type_is(o, "Replace")
                && o.get("content").and_then(Value::as_str) == Some(meta.as_str()))
    };
    if has_type(pre, "Metaspace")
        || has_type(decoder, "Metaspace")
        || any_object(decoder, &replaces_meta)
        || any_object(normalizer, &writes_meta)
        || model == Some("Unigram")
    {
        return VocabKind::SentencePiece;
    }
    if model == Some("WordPiece") {
        return VocabKind::WordPiece;
    }
    VocabKind::Plain
}

fn type_is(o: &serde_json::Map<String, Value>, t: &str) -> bool {
    o.get("type").and_then(Value::as_str) == Some(t)
}

/// Whether `pred` holds for `v` or any object nested in it (a `Sequence`'s
/// members, say). The depth is bounded by serde_json's recursion limit.
fn any_object(v: &Value, pred: &dyn Fn(&serde_json::Map<String, Value>) -> bool) -> bool {
    match v {
        Value::Object(o) => pred(o) || o.values().any(|x| any_object(x, pred)),
        Value::Array(a) => a.iter().any(|x| any_object(x, pred)),
        _ => false,
    }
}

/// A JSON id as a `u32`, or an error naming the token and the id.
fn json_id(id: &Value, token: &str) -> Result<u32, String> {
    id.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "token {} has id {}, which is not an integer from 0 to {}",
                quoted(&excerpt(token)),
                excerpt(&id.to_string()),
                u32::MAX
            )
        })
}

/// `s` cut to 60 chars with an ellipsis, for error messages.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// An error message on one line (serde_json's are; this keeps them so).
fn one_line(s: String) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Whether a `vocab.txt` token is a bracketed special like `[CLS]` or
/// `[MASK]`. BERT's `[unusedN]` are ordinary (never trained) pieces, as its
/// tokenizer.json has them, not special tokens.
fn bracketed(t: &str) -> bool {
    t.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .is_some_and(|inner| {
            !inner.is_empty()
                && !inner.starts_with("unused")
                && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A vocabulary entry's text as a person reads it, by kind.
fn decode(kind: VocabKind, piece: &str) -> String {
    match kind {
        VocabKind::ByteLevelBpe => byte_level(piece),
        VocabKind::SentencePiece => {
            byte_fallback(piece).unwrap_or_else(|| piece.replace(META_SPACE, " "))
        }
        VocabKind::WordPiece | VocabKind::Plain => piece.to_owned(),
    }
}

/// `Some` for a SentencePiece byte token `<0xNN>`: the byte's char when it is
/// ASCII (a whole UTF-8 char by itself), the token unchanged otherwise.
/// `None` for any other token.
fn byte_fallback(piece: &str) -> Option<String> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let b = u8::from_str_radix(hex, 16).ok()?;
    Some(if b.is_ascii() {
        char::from(b).to_string()
    } else {
        piece.to_owned()
    })
}

/// A byte-level BPE token read back: each char's byte through the inverse of
/// GPT-2's `bytes_to_unicode`, runs of bytes read as UTF-8 with each invalid
/// byte written `<0xNN>`, chars outside the table kept as they are.
fn byte_level(piece: &str) -> String {
    let mut out = String::with_capacity(piece.len());
    let mut bytes = Vec::new();
    for c in piece.chars() {
        match gpt2_byte(c) {
            Some(b) => bytes.push(b),
            None => {
                push_utf8(&mut out, &bytes);
                bytes.clear();
                out.push(c);
            }
        }
    }
    push_utf8(&mut out, &bytes);
    out
}

/// Appends `bytes` read as UTF-8, each byte of an invalid sequence as `<0xNN>`.
fn push_utf8(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "<0x{b:02X}>");
        }
    }
}

/// The byte that GPT-2's `bytes_to_unicode` maps to `c`. Bytes that print,
/// `!`..=`~`, `¡`..=`¬` and `®`..=`ÿ`, stand for themselves; the other 68
/// (0..=32, 127..=160 and 173), in that order, for U+0100..=U+0143.
fn gpt2_byte(c: char) -> Option<u8> {
    let c = u32::from(c);
    let b = match c {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => c,
        0x100..=0x143 => match c - 0x100 {
            n @ 0..=32 => n,
            n @ 33..=66 => n - 33 + 127,
            _ => 173,
        },
        _ => return None,
    };
    u8::try_from(b).ok()
}

#[cfg(test)]
mod tests;
