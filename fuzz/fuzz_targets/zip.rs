//! A zip archive: any bytes give a member list or an error, never a panic;
//! every member's range lies inside the file; inflation stays within its
//! cap; and an archive that looks like a torch.save checkpoint or an .npz
//! is read on through its pickle and array headers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use singularity_gpu::internals::{npy, pytorch, zip};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = zip::entries(data) else {
        return;
    };
    for e in &entries {
        if let Ok(r) = zip::data_range(data, e) {
            assert!(r.end <= data.len());
        }
        if let Ok(r) = zip::stored_range(data, e) {
            assert!(r.end <= data.len());
            let _ = npy::parse(&data[r]);
        }
        if let Ok(head) = zip::inflate_prefix(data, e, 4096) {
            assert!(head.len() <= 4096);
            let total = usize::try_from(e.uncompressed_size).unwrap_or(usize::MAX);
            if let Ok(n) = npy::parse_prefix(&head, total) {
                assert!(n.data.end <= total);
            }
        }
        if let Ok(out) = zip::inflate(data, e, 1 << 20) {
            assert!(out.len() <= 1 << 20);
        }
    }
    if let Some(prefix) = pytorch::torch_prefix(&entries) {
        let _ = pytorch::parse(data, &entries, &prefix);
    }
});
