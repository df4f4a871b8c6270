//! The safetensors header: any bytes give tensors or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((tensors, ranges)) = singularity_gpu::internals::safetensors::parse(data) {
        for (t, r) in tensors.iter().zip(&ranges) {
            assert!(
                r.end <= data.len() && r.start <= r.end,
                "{}: range outside the file",
                t.name
            );
        }
    }
});
