//! Which tensor of a file to survey: `--key`, else the only 2-D tensor,
//! else the first of the usual names, over the format-neutral
//! [`TensorDesc`]s every format gives, so every format offers the same
//! choices and the same messages; and how its stored dtype is read (`--as`).

use std::path::Path;

use crate::dtype::Dtype;
use crate::error::{one_line, Error, Result};
use crate::load::source::{StoredDtype, TensorDesc};

/// Names tried, in order, when `--key` is not given and the file holds more
/// than one 2-D tensor: the input embedding of the usual architectures.
pub const INPUT_EMBEDDING_KEYS: &[&str] = &[
    "embeddings",
    "model.embed_tokens.weight",
    "embed_tokens.weight",
    "transformer.wte.weight",
    "wte.weight",
    "tok_embeddings.weight",
    "token_embd.weight",
    "embeddings.word_embeddings.weight",
    "bert.embeddings.word_embeddings.weight",
    "model.decoder.embed_tokens.weight",
    "gpt_neox.embed_in.weight",
    "embedding.weight",
    "lm_head.weight",
    "output.weight",
];

/// Names tried, in order, for the output head (`--unembedding`).
pub const OUTPUT_HEAD_KEYS: &[&str] = &[
    "lm_head.weight",
    "output.weight",
    "embed_out.weight",
    "cls.predictions.decoder.weight",
    "model.lm_head.weight",
];

/// The error that lists the 2-D tensors found, with shape and dtype.
pub(crate) fn listing(tensors: &[TensorDesc]) -> String {
    let items: Vec<String> = tensors
        .iter()
        .filter(|t| t.is_matrix())
        .map(|t| format!("{:?} {:?} {}", t.name, t.shape, t.dtype))
        .collect();
    if items.is_empty() {
        "the file holds no 2-D tensor".to_string()
    } else {
        format!("2-D tensors: {}", items.join(", "))
    }
}

/// The first of `preferred` found among `names`. Input-embedding keys come
/// before output-head keys (`lm_head.weight` is the last resort of the
/// input list): within each tier an exact name first, then (for nested
/// checkpoints, `model_state_dict.embedding.weight`, or multimodal models,
/// `model.language_model.embed_tokens.weight`) a name ending in `.` and the
/// key, keys in order. Names inside numbered layers (`layer.3.output.weight`)
/// never match a key as a suffix. Two names ending in the same key are
/// ambiguous: an error that asks for `--key`.
pub fn pick_name<'a>(
    names: &[&'a str],
    preferred: &[&str],
) -> std::result::Result<Option<&'a str>, String> {
    let heads: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|k| OUTPUT_HEAD_KEYS.contains(k))
        .collect();
    let inputs: Vec<&str> = preferred
        .iter()
        .copied()
        .filter(|k| !OUTPUT_HEAD_KEYS.contains(k))
        .collect();
    let in_layer = |n: &str| {
        n.split('.')
            .any(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
    };
    for tier in [inputs, heads] {
        if let Some(n) = tier
            .iter()
            .find_map(|k| names.iter().find(|n| *n == k).copied())
        {
            return Ok(Some(n));
        }
        for k in &tier {
            let hits: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| n.strip_suffix(k).is_some_and(|head| head.ends_with('.')))
                .filter(|n| !in_layer(n))
                .collect();
            match hits.as_slice() {
                [] => continue,
                [one] => return Ok(Some(one)),
                several => {
                    let shown: Vec<String> = several.iter().map(|n| format!("{n:?}")).collect();
                    return Err(format!(
                        "several tensors end in {k:?} ({}); pick one with --key",
                        shown.join(", ")
                    ));
                }
            }
        }
    }
    Ok(None)
}

/// Picks the tensor to survey: `--key` when given, else the only 2-D tensor,
/// else the first of `preferred` present as a 2-D tensor (see [`pick_name`]).
pub fn choose(
    path: &Path,
    tensors: &[TensorDesc],
    key: Option<&str>,
    preferred: &[&str],
) -> Result<usize> {
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
    let found = |name: &str| tensors.iter().position(|t| t.name == name);
    let index = match key {
        Some(k) => found(k).ok_or_else(|| {
            tensor_err(format!(
                "no tensor named {:?}; {}",
                one_line(k),
                listing(tensors)
            ))
        })?,
        None => {
            let matrices: Vec<&str> = tensors
                .iter()
                .filter(|t| t.is_matrix())
                .map(|t| t.name.as_str())
                .collect();
            let name = match matrices.as_slice() {
                [only] => Some(*only),
                _ => pick_name(&matrices, preferred).map_err(tensor_err)?,
            };
            name.and_then(found).ok_or_else(|| {
                tensor_err(format!(
                    "no {} found (pick one with --key); {}",
                    if preferred == OUTPUT_HEAD_KEYS {
                        "output head"
                    } else {
                        "embedding tensor"
                    },
                    listing(tensors)
                ))
            })?
        }
    };
    check_matrix(path, &tensors[index])?;
    Ok(index)
}

/// An error unless `t` is a matrix with rows and columns.
pub(crate) fn check_matrix(path: &Path, t: &TensorDesc) -> Result<()> {
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
    if !t.is_matrix() {
        return Err(tensor_err(format!(
            "tensor {:?} has shape {:?}; an embedding matrix must be 2-D",
            t.name, t.shape
        )));
    }
    if t.shape.contains(&0) {
        return Err(tensor_err(format!(
            "tensor {:?} has shape {:?}: no rows or no columns to survey",
            t.name, t.shape
        )));
    }
    Ok(())
}

/// The dtype to read a stored tensor as, given `--as`.
pub fn read_as(path: &Path, t: &TensorDesc, reinterpret: Option<Dtype>) -> Result<Dtype> {
    let name = &t.name;
    let stored = &t.dtype;
    let tensor_err = |reason: String| Error::Tensor {
        path: path.to_path_buf(),
        reason,
    };
    Ok(match (stored, reinterpret) {
        (StoredDtype::F32, None) => Dtype::F32,
        (StoredDtype::F16, None) => Dtype::F16,
        (StoredDtype::BF16, None) => Dtype::BF16,
        (StoredDtype::F64, None) => Dtype::F64,
        (q, None) if q.is_quantized() => Dtype::F32,
        (StoredDtype::U16 | StoredDtype::I16, Some(d @ (Dtype::BF16 | Dtype::F16))) => d,
        (StoredDtype::Other(v), Some(d @ (Dtype::BF16 | Dtype::F16))) if v == "V2" => d,
        (StoredDtype::Other(v), _) if v == "V2" => {
            return Err(tensor_err(format!(
                "tensor {name:?} is a 2-byte raw (void) array, as numpy saves ml_dtypes' bfloat16; say how to read its bits with --as bf16 or --as f16"
            )))
        }
        (StoredDtype::U16 | StoredDtype::I16, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} is {stored}; say how to read its bits with --as bf16 or --as f16"
            )))
        }
        (
            StoredDtype::F32
            | StoredDtype::F16
            | StoredDtype::BF16
            | StoredDtype::F64
            | StoredDtype::Q8_0
            | StoredDtype::Q4_0
            | StoredDtype::Q4_K
            | StoredDtype::Q6_K,
            Some(_),
        ) => {
            return Err(Error::Usage(format!(
                "{}: --as applies to U16/I16 tensors (and 2-byte raw arrays) only; tensor {name:?} is {stored}",
                one_line(&path.display().to_string())
            )))
        }
        (other, _) => {
            return Err(tensor_err(format!(
                "tensor {name:?} has dtype {other}; supported: F32, F16, BF16, F64, Q8_0, Q4_0, Q4_K, Q6_K, and U16/I16 with --as bf16|f16"
            )))
        }
    })
}

/// The input-embedding names that are not also output-head names.
pub(crate) fn input_only_keys() -> Vec<&'static str> {
    INPUT_EMBEDDING_KEYS
        .iter()
        .copied()
        .filter(|k| !OUTPUT_HEAD_KEYS.contains(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize]) -> TensorDesc {
        TensorDesc {
            name: name.into(),
            dtype: StoredDtype::F32,
            shape: shape.to_vec(),
        }
    }

    fn pick(tensors: &[TensorDesc]) -> Result<usize> {
        choose(Path::new("f"), tensors, None, INPUT_EMBEDDING_KEYS)
    }

    #[test]
    fn preferred_keys_match_exactly_first_then_as_a_dotted_suffix() {
        let ts = [
            t("model_state_dict.lm_head.weight", &[4, 2]),
            t("model_state_dict.embedding.weight", &[4, 2]),
            t("model_state_dict.embedding.bias", &[4]),
            t("xembedding.weight", &[4, 2]),
        ];
        // "embedding.weight" comes before "lm_head.weight" in the preferred order.
        assert_eq!(pick(&ts).unwrap(), 1);
        // An input embedding nested in a multimodal model wins over the
        // output head's exact name (lm_head is the input list's last resort).
        let ts = [
            t("model.language_model.embed_tokens.weight", &[4, 2]),
            t("lm_head.weight", &[4, 2]),
        ];
        assert_eq!(pick(&ts).unwrap(), 0);
        // Among input keys, an exact name wins over an earlier key as a suffix.
        let ts = [
            t("a.embeddings", &[4, 2]),
            t("model.embed_tokens.weight", &[4, 2]),
        ];
        assert_eq!(pick(&ts).unwrap(), 1);
        // Names inside numbered layers never match as a suffix: BERT's
        // attention outputs are not an output head.
        let names = [
            "encoder.layer.0.attention.output.weight",
            "encoder.layer.1.output.weight",
        ];
        assert_eq!(pick_name(&names, OUTPUT_HEAD_KEYS), Ok(None));
        // Only whole components match: "xembedding.weight" is not "embedding.weight".
        let ts = [t("xembedding.weight", &[4, 2]), t("other", &[4, 2])];
        assert!(pick(&ts).is_err());
        // Two tensors ending in the same key: ambiguous, say so.
        let ts = [
            t("ema.embedding.weight", &[4, 2]),
            t("model.embedding.weight", &[4, 2]),
        ];
        let e = pick(&ts).unwrap_err().to_string();
        assert!(
            e.contains("several tensors end in") && e.contains("--key"),
            "{e}"
        );
        // --key stays exact.
        let ts = [t("m.embedding.weight", &[4, 2]), t("x", &[4, 2])];
        assert!(choose(Path::new("f"), &ts, Some("embedding.weight"), &[]).is_err());
    }
}
