//! Hostile files: counts, shapes and sizes that fit the file's length but
//! not memory. Each must end the binary with one line on stderr and exit
//! code 2 (or be surveyed in bounded memory), never with an abort
//! (`memory allocation of … failed`, exit 134) or a panic.
//!
//! The files are sparse: written with a few real bytes and `File::set_len`,
//! so that even 1 TiB costs no disk (hence Unix only: NTFS would reserve
//! the space). Each one but the 2 TiB HDF5 step (which `hdf5-reader`
//! already refused) made the readers as they were before issue #12 abort,
//! by reserving from a declared count or size (37 GB to 8.8 TB), and each
//! is large enough that no ordinary machine grants what it asks for.
//! The last test measures the binary's own peak memory on a compressed
//! `.npz`.
#![cfg(unix)]

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

const GIB: u64 = 1 << 30;

/// The length of most hostile files (sparse: no disk): a tensor that long
/// fits no machine's memory.
const HUGE: u64 = 1 << 40;

/// Writes `parts` (offset, bytes) into `dir/name`, a file of `len` bytes
/// whose other bytes are holes (read as zeros, stored nowhere).
fn sparse(dir: &TempDir, name: &str, len: u64, parts: &[(u64, &[u8])]) -> PathBuf {
    let path = dir.path().join(name);
    let mut f = File::create(&path).expect("create");
    f.set_len(len).expect("set_len");
    for (at, bytes) in parts {
        f.seek(SeekFrom::Start(*at)).expect("seek");
        f.write_all(bytes).expect("write");
    }
    path
}

/// Runs the binary with `--device cpu` and `args`.
fn run(args: &[&str]) -> Output {
    Command::cargo_bin("singularity-gpu")
        .expect("binary built")
        .arg("--device")
        .arg("cpu")
        .args(args)
        .output()
        .expect("run binary")
}

/// Runs the binary on `file` and checks that it refused it as bad input:
/// exit 2, nothing on stdout, one line on stderr naming the file and all
/// of `phrases`. Returns the line.
fn refused(file: &Path, args: &[&str], phrases: &[&str]) -> String {
    let file_arg = file.to_str().expect("UTF-8 path");
    let mut all: Vec<&str> = args.to_vec();
    if !args.contains(&"--trajectory") {
        all.push("--file");
    }
    all.push(file_arg);
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status {:?} (134 is an abort), stderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert!(
        stderr.starts_with("singularity-gpu: error:") && stderr.matches('\n').count() == 1,
        "not one error line:\n{stderr}"
    );
    assert!(
        stderr.contains(file_arg),
        "the file is not named:\n{stderr}"
    );
    for p in phrases {
        assert!(stderr.contains(p), "{p:?} not in:\n{stderr}");
    }
    stderr
}

// ---------------------------------------------------------------------------
// GGUF
// ---------------------------------------------------------------------------

/// A v3 GGUF header: magic, version, tensor count, metadata count.
fn gguf_header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend(3u32.to_le_bytes());
    h.extend(n_tensors.to_le_bytes());
    h.extend(n_kv.to_le_bytes());
    h
}

/// A GGUF string: u64 length, bytes.
fn gguf_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

#[test]
fn gguf_metadata_count_that_fits_the_file_but_not_memory() {
    // The issue's file: b"GGUF" + <IQQ 3, 0, (8<<30)//13-10>, 8 GiB long.
    // Each entry takes at least 13 bytes, so the count passes the length
    // check; the old reader reserved it (37 GB) and aborted. Zeros are an
    // empty key of type u8: the second one is a duplicate.
    let dir = TempDir::new().unwrap();
    let n_kv = (8 * GIB) / 13 - 10;
    let f = sparse(&dir, "kv.gguf", 8 * GIB, &[(0, &gguf_header(0, n_kv))]);
    refused(&f, &[], &["metadata key \"\" appears twice"]);
}

#[test]
fn gguf_tensor_count_that_fits_the_file_but_not_memory() {
    // 24 bytes at least per tensor info; the old reader reserved the infos,
    // a name set and the tensors for 46 billion of them (2.9 TB).
    let dir = TempDir::new().unwrap();
    let n = HUGE / 24 - 10;
    let f = sparse(&dir, "t.gguf", HUGE, &[(0, &gguf_header(n, 0))]);
    refused(&f, &[], &["tensor \"\" appears twice"]);
}

#[test]
fn gguf_string_array_of_137_billion_empty_strings() {
    // 8 bytes each in the file (a zero length), 24 in memory as a String:
    // the old reader reserved 3.3 TB for them; the header's memory budget
    // refuses them before anything is allocated.
    let dir = TempDir::new().unwrap();
    let mut h = gguf_header(0, 1);
    gguf_str(&mut h, "tokenizer.ggml.tokens");
    h.extend(9u32.to_le_bytes()); // array
    h.extend(8u32.to_le_bytes()); // of strings
    let n = (HUGE - h.len() as u64 - 8) / 8;
    h.extend(n.to_le_bytes());
    let f = sparse(&dir, "strings.gguf", HUGE, &[(0, &h)]);
    refused(
        &f,
        &[],
        &[
            "array \"tokenizer.ggml.tokens\" of",
            "past 1073741824 bytes",
        ],
    );
}

#[test]
fn gguf_byte_array_as_long_as_the_file() {
    // A u8 array of 1 TiB, every byte in the file: the old reader copied
    // it into memory (and aborted when it could not).
    let dir = TempDir::new().unwrap();
    let mut h = gguf_header(0, 1);
    gguf_str(&mut h, "general.blob");
    h.extend(9u32.to_le_bytes());
    h.extend(0u32.to_le_bytes()); // of u8
    let n = HUGE - h.len() as u64 - 8;
    h.extend(n.to_le_bytes());
    let f = sparse(&dir, "blob.gguf", HUGE, &[(0, &h)]);
    refused(
        &f,
        &[],
        &["array \"general.blob\" of", "past 1073741824 bytes"],
    );
}

#[test]
fn gguf_quantized_matrix_whose_dequantized_values_do_not_fit() {
    // A Q4_0 embedding of 1 TiB, every block in the file: its f32 values
    // take 7.1 times that (7.8 TB), which the old reader asked for with
    // vec![0; n] and aborted.
    let dir = TempDir::new().unwrap();
    let cols = 4096u64;
    let row_bytes = cols / 32 * 18;
    let mut h = gguf_header(1, 0);
    gguf_str(&mut h, "token_embd.weight");
    h.extend(2u32.to_le_bytes());
    let data_start = (h.len() as u64 + 8 + 8 + 4 + 8).next_multiple_of(32);
    let rows = (HUGE - data_start) / row_bytes;
    h.extend(cols.to_le_bytes());
    h.extend(rows.to_le_bytes());
    h.extend(2u32.to_le_bytes()); // Q4_0
    h.extend(0u64.to_le_bytes());
    let len = data_start + rows * row_bytes;
    let f = sparse(&dir, "q4.gguf", len, &[(0, &h)]);
    let want = format!("needs {} bytes", rows * cols * 4);
    refused(&f, &[], &["the dequantized matrix", &want]);
}

// ---------------------------------------------------------------------------
// NumPy
// ---------------------------------------------------------------------------

/// A .npy v1 header for `dict`, padded so the data starts at a multiple of 64.
fn npy_header(dict: &str) -> Vec<u8> {
    let mut h = dict.as_bytes().to_vec();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend((h.len() as u16).to_le_bytes());
    f.extend(h);
    f
}

#[test]
fn npy_big_endian_matrix_whose_copy_does_not_fit() {
    // A big-endian array is byte-swapped into a copy: 1 TiB, which the
    // old reader took with to_vec() and aborted on.
    let dir = TempDir::new().unwrap();
    let cols = 4096u64;
    let rows = (HUGE - 128) / (cols * 4);
    let h = npy_header(&format!(
        "{{'descr': '>f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
    ));
    let len = h.len() as u64 + rows * cols * 4;
    let f = sparse(&dir, "be.npy", len, &[(0, &h)]);
    let want = format!("needs {} bytes", rows * cols * 4);
    refused(&f, &[], &["the array's row-major copy", &want]);
}

// ---------------------------------------------------------------------------
// Zip archives: .npz and PyTorch
// ---------------------------------------------------------------------------

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;

/// One member of a hand-built ZIP64 archive: its name, method (0 stored, 8
/// deflated), CRC-32, the first bytes of its stored data, the length of
/// that data (the rest a hole), and its uncompressed size.
struct Member<'a> {
    name: &'a str,
    method: u16,
    crc: u32,
    head: &'a [u8],
    compressed: u64,
    uncompressed: u64,
}

/// The tail of a ZIP64 archive whose central directory (`count` entries,
/// `size` bytes) starts at `offset`, its ZIP64 end record at `at`.
fn zip64_tail(count: u64, size: u64, offset: u64, at: u64) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(0x0606_4b50u32.to_le_bytes());
    t.extend(44u64.to_le_bytes());
    t.extend([45, 0, 45, 0]);
    t.extend([0u8; 8]); // this disk, the directory's disk
    t.extend(count.to_le_bytes());
    t.extend(count.to_le_bytes());
    t.extend(size.to_le_bytes());
    t.extend(offset.to_le_bytes());
    t.extend(0x0706_4b50u32.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(at.to_le_bytes());
    t.extend(1u32.to_le_bytes());
    t.extend(0x0605_4b50u32.to_le_bytes());
    t.extend([0u8; 4]);
    t.extend([0xFF; 4]); // entry counts: in the ZIP64 record
    t.extend([0xFF; 8]); // directory size and offset: likewise
    t.extend(0u16.to_le_bytes());
    t
}

/// A ZIP64 archive of `members` as sparse-file parts and its length.
fn zip64(members: &[Member]) -> (Vec<(u64, Vec<u8>)>, u64) {
    let mut parts = Vec::new();
    let mut cd = Vec::new();
    let mut at = 0u64;
    for m in members {
        let mut local = Vec::new();
        local.extend(LOCAL_SIG.to_le_bytes());
        local.extend([45, 0, 0, 0]);
        local.extend(m.method.to_le_bytes());
        local.extend([0u8; 4]);
        local.extend(m.crc.to_le_bytes());
        local.extend([0xFF; 8]);
        local.extend((m.name.len() as u16).to_le_bytes());
        local.extend(20u16.to_le_bytes());
        local.extend(m.name.as_bytes());
        local.extend([1, 0, 16, 0]);
        local.extend(m.uncompressed.to_le_bytes());
        local.extend(m.compressed.to_le_bytes());
        local.extend(m.head);
        let local_len = local.len() as u64 - m.head.len() as u64;
        parts.push((at, local));

        cd.extend(CENTRAL_SIG.to_le_bytes());
        cd.extend([45, 0, 45, 0, 0, 0]);
        cd.extend(m.method.to_le_bytes());
        cd.extend([0u8; 4]);
        cd.extend(m.crc.to_le_bytes());
        cd.extend([0xFF; 8]);
        cd.extend((m.name.len() as u16).to_le_bytes());
        cd.extend(28u16.to_le_bytes());
        cd.extend([0u8; 10]);
        cd.extend([0xFF; 4]);
        cd.extend(m.name.as_bytes());
        cd.extend([1, 0, 24, 0]);
        cd.extend(m.uncompressed.to_le_bytes());
        cd.extend(m.compressed.to_le_bytes());
        cd.extend(at.to_le_bytes());
        at += local_len + m.compressed;
    }
    let cd_at = at;
    let tail = zip64_tail(
        members.len() as u64,
        cd.len() as u64,
        cd_at,
        cd_at + cd.len() as u64,
    );
    let len = cd_at + cd.len() as u64 + tail.len() as u64;
    cd.extend(tail);
    parts.push((cd_at, cd));
    (parts, len)
}

fn sparse_parts(dir: &TempDir, name: &str, len: u64, parts: &[(u64, Vec<u8>)]) -> PathBuf {
    let refs: Vec<(u64, &[u8])> = parts.iter().map(|(a, b)| (*a, b.as_slice())).collect();
    sparse(dir, name, len, &refs)
}

#[test]
fn zip_entry_count_that_fits_the_directory_but_not_memory() {
    // A central directory of 1 TiB declaring as many 46-byte records as it
    // could hold (24 billion): the old reader reserved 1.3 TB for them.
    let dir = TempDir::new().unwrap();
    let cd_size = HUGE - 98;
    let count = cd_size / 46;
    let tail = zip64_tail(count, cd_size, 0, cd_size);
    let f = sparse(
        &dir,
        "many.npz",
        cd_size + tail.len() as u64,
        &[(0, &LOCAL_SIG.to_le_bytes()), (cd_size, &tail)],
    );
    refused(&f, &[], &[&format!("declares {count} entries")]);
}

#[test]
fn npz_member_declaring_more_than_memory_holds() {
    // A deflated member of 40 GiB whose stream is valid for its header and
    // 1.1 MiB of zeros, then corrupt, declaring 64 GiB: the old reader
    // reserved min(2 × 40 GiB, 64 GiB) up front and aborted. Now the
    // buffer is asked for fallibly and filled only as the stream gives bytes.
    let dir = TempDir::new().unwrap();
    let cols = 4096u64;
    let rows = (1u64 << 36) / (cols * 4) - 1;
    let header = npy_header(&format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
    ));
    // Stored deflate blocks (not final): the header, then 17 of 65,535 zeros.
    let block = |bytes: &[u8]| {
        let mut b = vec![0u8];
        b.extend((bytes.len() as u16).to_le_bytes());
        b.extend((!(bytes.len() as u16)).to_le_bytes());
        b.extend(bytes);
        b
    };
    let mut stream = block(&header);
    for _ in 0..17 {
        stream.extend(block(&[0u8; 65535]));
    }
    let (parts, len) = zip64(&[Member {
        name: "emb.npy",
        method: 8,
        crc: 0,
        head: &stream,
        compressed: 40 * GIB,
        uncompressed: header.len() as u64 + rows * cols * 4,
    }]);
    let f = sparse_parts(&dir, "lying.npz", len, &parts);
    let line = refused(&f, &[], &["member \"emb.npy\""]);
    // Where the machine grants the buffer, the stream's corruption is the
    // error; where it does not, the allocation is.
    assert!(line.contains("corrupt") || line.contains("needs"), "{line}");
}

/// A protocol-2 pickle of `{"emb": tensor}`: a FloatStorage of `numel`
/// elements under key "0", viewed as `size` with `stride`.
fn torch_pickle(numel: u64, size: [u64; 2], stride: [u64; 2]) -> Vec<u8> {
    fn long(p: &mut Vec<u8>, v: u64) {
        p.extend([0x8a, 8]);
        p.extend(v.to_le_bytes());
    }
    fn text(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }
    let mut p = vec![0x80, 2];
    p.extend(b"ccollections\nOrderedDict\n)R(");
    text(&mut p, "emb");
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    text(&mut p, "storage");
    p.extend(b"ctorch\nFloatStorage\n");
    text(&mut p, "0");
    text(&mut p, "cpu");
    long(&mut p, numel);
    p.extend(b"tQK\x00(");
    long(&mut p, size[0]);
    long(&mut p, size[1]);
    p.push(b't');
    p.push(b'(');
    long(&mut p, stride[0]);
    long(&mut p, stride[1]);
    p.push(b't');
    p.push(0x89);
    p.extend(b"ccollections\nOrderedDict\n)RtRu.");
    p
}

#[test]
fn torch_strided_view_whose_copy_does_not_fit() {
    // A transposed view of a 1 TiB storage is gathered into a copy of its
    // own: the old reader reserved it (1 TiB) and aborted.
    let dir = TempDir::new().unwrap();
    let (rows, cols) = (1u64 << 26, 4096u64);
    let numel = rows * cols;
    let pkl = torch_pickle(numel, [rows, cols], [1, rows]);
    let (parts, len) = zip64(&[
        Member {
            name: "archive/data.pkl",
            method: 0,
            crc: 0,
            head: &pkl,
            compressed: pkl.len() as u64,
            uncompressed: pkl.len() as u64,
        },
        Member {
            name: "archive/data/0",
            method: 0,
            crc: 0,
            head: &[],
            compressed: numel * 4,
            uncompressed: numel * 4,
        },
    ]);
    let f = sparse_parts(&dir, "strided.pt", len, &parts);
    let want = format!("needs {} bytes", numel * 4);
    refused(&f, &[], &["tensor \"emb\"", "its gathered copy", &want]);
}

// ---------------------------------------------------------------------------
// Trajectories
// ---------------------------------------------------------------------------

#[test]
fn hdf5_trajectory_of_a_trillion_unwritten_steps() {
    // 1,400 bytes of h5py output declaring shape (2^40, 1, 1), chunked, no
    // chunk written, made 1 TiB long so that its length allows the shape:
    // the old reader listed every step (8 TB of u64) before reading one.
    let dir = TempDir::new().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trajectory/unwritten_u16.h5");
    let bytes = std::fs::read(fixture).unwrap();
    let f = sparse(&dir, "unwritten.h5", HUGE, &[(0, &bytes)]);
    refused(
        &f,
        &["--as", "bf16", "--trajectory"],
        &["1099511627776 steps", "more than the 1048576"],
    );
    // A selection within the cap is surveyed (every step a fill value, so
    // nothing moves), its steps computed from START:END:EVERY alone.
    let out = run(&[
        "--as",
        "bf16",
        "--steps",
        "0:1099511627775:1073741824",
        "--json",
        "--trajectory",
        f.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps: Vec<u64> = j["series"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..1024).map(|k| k << 30).collect();
    assert_eq!(steps, want);
}

#[test]
fn hdf5_trajectory_step_larger_than_memory() {
    // Shape (4, 2^20, 2^20) of u16, no chunk written, made 1 TiB long: one
    // step is 2 TiB of fill values. hdf5-reader asks for a selection's
    // buffer fallibly (it did before issue #12 too); the refusal is one line.
    let dir = TempDir::new().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trajectory/wide_u16.h5");
    let bytes = std::fs::read(fixture).unwrap();
    let f = sparse(&dir, "wide.h5", HUGE, &[(0, &bytes)]);
    refused(
        &f,
        &["--as", "bf16", "--trajectory"],
        &["cannot allocate 2199023255552 bytes"],
    );
}

#[test]
fn safetensors_trajectory_of_550_billion_steps() {
    // F16 [2^39 - 128, 1, 1]: every step's bytes in the (sparse) file; the
    // old reader listed every step (4.4 TB).
    let dir = TempDir::new().unwrap();
    let steps = (HUGE - 256) / 2;
    let json = format!(
        r#"{{"W":{{"dtype":"F16","shape":[{steps},1,1],"data_offsets":[0,{}]}}}}"#,
        steps * 2
    );
    let mut h = (json.len() as u64).to_le_bytes().to_vec();
    h.extend(json.as_bytes());
    let len = h.len() as u64 + steps * 2;
    let f = sparse(&dir, "run.safetensors", len, &[(0, &h)]);
    refused(
        &f,
        &["--trajectory"],
        &[&format!("{steps} steps"), "--steps START:END:EVERY"],
    );
}

// ---------------------------------------------------------------------------
// Memory: a deflated .npz member
// ---------------------------------------------------------------------------

/// Runs the binary with `args` and returns its stdout, stderr, exit code
/// and its own peak resident memory in bytes: the high-water mark of its
/// address space (`VmHWM` in `/proc/PID/status`), read every millisecond
/// while it runs. Not `wait4`'s `ru_maxrss`: a child spawned from this test
/// process counts the parent's resident memory from before its `exec`, and
/// in one test binary that is every other test's memory too.
#[cfg(target_os = "linux")]
fn run_measured(args: &[&str]) -> (Vec<u8>, String, i32, u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_singularity-gpu"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let status = format!("/proc/{}/status", child.id());
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak_kib = 0u64;
            while !done.load(Ordering::Relaxed) {
                // Absent once the process has exited (its memory is gone).
                let hwm = std::fs::read_to_string(&status).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                });
                peak_kib = peak_kib.max(hwm.unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            peak_kib
        })
    };
    let out = child.wait_with_output().expect("wait for the binary");
    done.store(true, Ordering::Relaxed);
    let peak = poller.join().expect("poller") * 1024;
    assert!(peak > 0, "no VmHWM was read while the binary ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.stdout, stderr, out.status.code().unwrap_or(-1), peak)
}

#[cfg(target_os = "linux")]
#[test]
fn a_deflated_npz_member_costs_its_array_once() {
    // 256 MiB of f32, 65,536 × 1,024: row r holds r in its first column and
    // zeros elsewhere, so every row is distinct, and deflate takes it to a
    // few hundred KB. Inflated into one buffer of exactly the array's size
    // (not inflated, then copied), the binary's peak stays within 1.2 times
    // the array (it was 2.03 times: 531 MB).
    let (rows, cols) = (65_536usize, 1_024usize);
    let array = rows * cols * 4;
    let header = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 1024), }");
    let mut plain = Vec::with_capacity(header.len() + array);
    plain.extend(&header);
    for r in 0..rows {
        plain.extend((r as f32).to_le_bytes());
        plain.resize(plain.len() + (cols - 1) * 4, 0);
    }
    let packed = miniz_oxide::deflate::compress_to_vec(&plain, 1);
    assert!(packed.len() < 4 << 20, "{} bytes deflated", packed.len());
    let (parts, len) = zip64(&[Member {
        name: "emb.npy",
        method: 8,
        crc: singularity_gpu::internals::zip::crc32(&plain),
        head: &packed,
        compressed: packed.len() as u64,
        uncompressed: plain.len() as u64,
    }]);
    drop(plain);
    let dir = TempDir::new().unwrap();
    let f = sparse_parts(&dir, "emb.npz", len, &parts);

    let (stdout, stderr, code, peak) =
        run_measured(&["--device", "cpu", "--json", "--file", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(j["shape"], serde_json::json!([rows, cols]));
    assert_eq!(j["n_unique"], rows);
    assert!(
        (peak as f64) <= 1.2 * array as f64,
        "peak memory {peak} bytes, {:.3} times the {array}-byte array",
        peak as f64 / array as f64
    );
}
