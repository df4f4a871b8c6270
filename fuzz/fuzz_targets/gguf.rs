//! A GGUF file: any bytes give tensors or an error, never a panic; every
//! quantized tensor of a valid file dequantizes or is refused, in bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;
use singularity_gpu::internals::{gguf, quant};

fuzz_target!(|data: &[u8]| {
    let Ok(g) = gguf::parse(data) else { return };
    let _ = g.tokens();
    for (t, r) in g.tensors.iter().zip(&g.ranges) {
        let Some(r) = r else { continue };
        assert!(r.end <= data.len());
        if t.shape.len() == 2 && t.dtype.is_quantized() {
            // Bounded: fuzz inputs are small, so is what they describe.
            let (rows, cols) = (t.shape[0], t.shape[1]);
            if rows.saturating_mul(cols) <= 1 << 20 {
                let _ = quant::dequantize(&t.dtype, &data[r.clone()], rows, cols);
            }
        }
    }
});
