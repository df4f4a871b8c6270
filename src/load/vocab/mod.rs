//! Token strings: tokenizer files read and decoded.

pub mod tokenizer;
