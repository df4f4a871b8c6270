//! Loading: [`open`] recognises an input by its content (`resolve`), opens
//! the files that hold the chosen tensor (`model`), chooses it the same way
//! whatever the format (`choose`), reads it as a [`Matrix`](crate::Matrix),
//! and finds its token strings ([`vocab`]).
//!
//! Each file format is a module of `format` (with the containers some of
//! them are stored in under `container`) that validates everything before
//! touching tensor data and depends only on `source`, the types and traits
//! every format implements, and the leaves below it (`files`, `alloc`,
//! `container`, the `Vocab` type), never on another format or on this module. A checkpoint series is read step by step through
//! [`steps`].

pub(crate) mod alloc;
pub(crate) mod choose;
pub(crate) mod container;
pub(crate) mod files;
pub(crate) mod format;
pub(crate) mod hub;
pub(crate) mod model;
pub(crate) mod resolve;
pub mod source;
pub mod steps;
pub mod vocab;

pub use choose::{INPUT_EMBEDDING_KEYS, OUTPUT_HEAD_KEYS};
pub use files::Map;
pub use model::{open, LoadOptions, Loaded, TensorInfo};
pub use resolve::open_file;
pub use source::{Bytes, StoredDtype, TensorDesc, TensorSource};
pub use vocab::{read_tokenizer, TokenNames, Vocab};
