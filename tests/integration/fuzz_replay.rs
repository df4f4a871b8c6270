//! Replays the inputs kept from the fuzzing runs (`scripts/fuzz.sh`, by
//! hand, not in CI) through the same parsers the fuzz targets drive:
//! `tests/fuzz/<target>/*`. Each input must give a value or an error, never
//! a panic, and a value must keep the target's invariants (ranges inside
//! the input, bounded output). Any crash a fuzzer finds is kept here,
//! minimised (`cargo fuzz tmin`), so that CI replays it for good.

use singularity_gpu::internals::{gguf, hdf5, npy, pickle, pytorch, quant, safetensors, zip};

use crate::common::root;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("tests/fuzz").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs kept under {}", dir.display());
    out
}

#[test]
fn safetensors_header_inputs() {
    for (name, data) in inputs("safetensors_header") {
        if let Ok((_, ranges)) = safetensors::parse(&data) {
            assert!(
                ranges
                    .iter()
                    .all(|r| r.start <= r.end && r.end <= data.len()),
                "{name}"
            );
        }
    }
}

#[test]
fn gguf_inputs() {
    for (name, data) in inputs("gguf") {
        let Ok(g) = gguf::parse(&data) else { continue };
        let _ = g.tokens();
        for (t, r) in g.tensors.iter().zip(&g.ranges) {
            let Some(r) = r else { continue };
            assert!(r.end <= data.len(), "{name}");
            if t.shape.len() == 2
                && t.dtype.is_quantized()
                && t.shape[0].saturating_mul(t.shape[1]) <= 1 << 20
            {
                let _ = quant::dequantize(&t.dtype, &data[r.clone()], t.shape[0], t.shape[1]);
            }
        }
    }
}

#[test]
fn npy_inputs() {
    for (name, data) in inputs("npy") {
        if let Ok(n) = npy::parse(&data) {
            assert!(n.data.end <= data.len(), "{name}");
            assert_eq!(
                npy::to_row_major(&data[n.data.clone()], &n)
                    .expect("a small array's copy")
                    .len(),
                n.data.len(),
                "{name}"
            );
        }
    }
}

#[test]
fn zip_inputs() {
    for (name, data) in inputs("zip") {
        let Ok(entries) = zip::entries(&data) else {
            continue;
        };
        for e in &entries {
            if let Ok(r) = zip::stored_range(&data, e) {
                assert!(r.end <= data.len(), "{name}");
                let _ = npy::parse(&data[r]);
            }
            if let Ok(head) = zip::inflate_prefix(&data, e, 4096) {
                assert!(head.len() <= 4096, "{name}");
            }
            if let Ok(out) = zip::inflate(&data, e, 1 << 20) {
                assert!(out.len() <= 1 << 20, "{name}");
            }
        }
        if let Some(prefix) = pytorch::torch_prefix(&entries) {
            let _ = pytorch::parse(&data, &entries, &prefix);
        }
    }
}

#[test]
fn pickle_inputs() {
    for (name, data) in inputs("pickle") {
        let _ = pickle::parse(&data, &pytorch::allowed);
        if let Ok(p) = pickle::parse(&data, &|_, _| false) {
            assert!(
                !p.values
                    .iter()
                    .any(|v| matches!(v, pickle::Value::Global { .. })),
                "{name}: a global got through"
            );
        }
    }
}

#[test]
fn hdf5_inputs() {
    for (name, data) in inputs("hdf5") {
        if let Err(e) = hdf5::read_all(&data) {
            assert!(!e.starts_with("step "), "{name}: {e}");
        }
    }
}
