//! The pickle reader: any bytes give an inert value tree or an error, never
//! a panic, a hang or an allocation sized by the input; a global outside
//! torch's allowlist is always refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use singularity_gpu::internals::{pickle, pytorch};

fuzz_target!(|data: &[u8]| {
    let _ = pickle::parse(data, &pytorch::allowed);
    // Nothing allowed: a pickle that names any global must be refused.
    if let Ok(p) = pickle::parse(data, &|_, _| false) {
        for v in &p.values {
            assert!(
                !matches!(v, pickle::Value::Global { .. }),
                "a global got through"
            );
        }
    }
});
