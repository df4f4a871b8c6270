//! The integration tests, as one test binary: the library and its GPU stack
//! (wgpu, naga) are linked once, not once per test file.
//!
//! Each module below tests one part of the program; `common` holds what they
//! share (running the binary, writing test files, the seeded generator, the
//! GPU adapter lookup, the real-data paths, brute-force references). A new
//! test file is one more module here. Fixtures live in `tests/fixtures/`, the
//! kept fuzzing inputs in `tests/fuzz/`.
//!
//! Run one module with a filter: `cargo test --release --test integration series::`.

mod common;

mod browser;
mod cli;
mod clouds;
mod formats;
mod fuzz_replay;
mod geometry;
mod gguf;
mod gpu_pairs;
mod hash_known;
mod hostile;
mod html;
mod indicators;
mod interface;
mod layout;
mod library;
mod many;
mod notebook;
mod pages;
mod parity;
mod realdata;
mod series;
mod shaders;
mod step_diff;
mod tokenizer;
mod torch;
mod trajectory;
