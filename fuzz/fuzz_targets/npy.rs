//! A .npy file: any bytes give an array description or an error, and the
//! row-major copy of a valid one never reads outside it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use singularity_gpu::internals::npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = npy::parse(data) {
        assert!(n.data.end <= data.len());
        // A fuzz input is small: so is its copy, which must be had.
        let out = npy::to_row_major(&data[n.data.clone()], &n).expect("a small array's copy");
        assert_eq!(out.len(), n.data.len());
    }
});
