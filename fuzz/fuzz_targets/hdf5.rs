//! An HDF5 file: any bytes give the 3-D datasets' steps or an error, and a
//! step read is exactly as long as its shape and dtype say.
#![no_main]
use libfuzzer_sys::fuzz_target;
use singularity_gpu::internals::hdf5;

fuzz_target!(|data: &[u8]| {
    let _ = hdf5::read_all(data);
});
