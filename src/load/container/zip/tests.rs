//! Unit tests of `zip`.

use super::*;

/// A hand-built archive: each member (name, method, bytes as stored,
/// uncompressed size, crc), optionally with ZIP64 records and extras.
struct Member<'a> {
    name: &'a str,
    method: u16,
    data: &'a [u8],
    usize_: u64,
    crc: u32,
}

fn stored<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        method: STORED,
        data,
        usize_: data.len() as u64,
        crc: crc32(data),
    }
}

fn build(members: &[Member], zip64: bool) -> Vec<u8> {
    let mut out = vec![];
    let mut cd = vec![];
    for m in members {
        let off = out.len() as u64;
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0]);
        out.extend_from_slice(&m.method.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&m.crc.to_le_bytes());
        out.extend_from_slice(&(m.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(m.usize_ as u32).to_le_bytes());
        out.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&3u16.to_le_bytes());
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&[0xAA; 3]); // padding-style extra field
        out.extend_from_slice(m.data);

        cd.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        cd.extend_from_slice(&m.method.to_le_bytes());
        cd.extend_from_slice(&[0; 4]);
        cd.extend_from_slice(&m.crc.to_le_bytes());
        let extra: Vec<u8> = if zip64 {
            cd.extend_from_slice(&[0xFF; 8]);
            let mut x = vec![1, 0, 24, 0];
            x.extend_from_slice(&m.usize_.to_le_bytes());
            x.extend_from_slice(&(m.data.len() as u64).to_le_bytes());
            x.extend_from_slice(&off.to_le_bytes());
            x
        } else {
            cd.extend_from_slice(&(m.data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(m.usize_ as u32).to_le_bytes());
            vec![]
        };
        cd.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 10]);
        if zip64 {
            cd.extend_from_slice(&[0xFF; 4]);
        } else {
            cd.extend_from_slice(&(off as u32).to_le_bytes());
        }
        cd.extend_from_slice(m.name.as_bytes());
        cd.extend_from_slice(&extra);
    }
    let cd_off = out.len() as u64;
    out.extend_from_slice(&cd);
    let n = members.len() as u64;
    if zip64 {
        let z = out.len() as u64;
        out.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(cd.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&z.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&EOCD_SIG.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let (n16, size32, off32) = if zip64 {
        (0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF)
    } else {
        (n as u16, cd.len() as u32, cd_off as u32)
    };
    out.extend_from_slice(&n16.to_le_bytes());
    out.extend_from_slice(&n16.to_le_bytes());
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&off32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn crc32_of_known_strings() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn lists_members_and_reads_stored_data_in_place() {
    for zip64 in [false, true] {
        let f = build(
            &[
                stored("archive/data.pkl", b"\x80\x02."),
                stored("archive/data/0", b"abcdefgh"),
            ],
            zip64,
        );
        let es = entries(&f).unwrap();
        assert_eq!(es.len(), 2);
        assert_eq!(es[1].name, "archive/data/0");
        assert_eq!(es[1].uncompressed_size, 8);
        let r = stored_range(&f, &es[1]).unwrap();
        assert_eq!(&f[r], b"abcdefgh");
        assert_eq!(inflate(&f, &es[0], 100).unwrap(), b"\x80\x02.");
    }
}

#[test]
fn inflates_deflated_members_within_the_cap() {
    let plain: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    let packed = miniz_oxide::deflate::compress_to_vec(&plain, 6);
    let m = Member {
        name: "a.npy",
        method: DEFLATED,
        data: &packed,
        usize_: plain.len() as u64,
        crc: crc32(&plain),
    };
    let f = build(&[m], false);
    let es = entries(&f).unwrap();
    assert_eq!(inflate(&f, &es[0], 1 << 20).unwrap(), plain);
    assert!(inflate(&f, &es[0], 100)
        .unwrap_err()
        .contains("more than the 100 allowed"));
    assert!(stored_range(&f, &es[0]).unwrap_err().contains("compressed"));
    // A wrong CRC is caught.
    let mut e = es[0].clone();
    e.crc32 ^= 1;
    assert!(inflate(&f, &e, 1 << 20).unwrap_err().contains("CRC"));
    // A size claim beyond deflate's ratio is refused before allocating.
    e.uncompressed_size = 1 << 40;
    assert!(inflate(&f, &e, usize::MAX)
        .unwrap_err()
        .contains("declares"));
}

#[test]
fn inflating_from_an_offset_keeps_only_the_rest_and_checks_the_whole() {
    let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let packed = miniz_oxide::deflate::compress_to_vec(&plain, 6);
    let member = |usize_: u64, crc: u32| Member {
        name: "a.npy",
        method: DEFLATED,
        data: &packed,
        usize_,
        crc,
    };
    let f = build(&[member(plain.len() as u64, crc32(&plain))], false);
    let e = &entries(&f).unwrap()[0];
    for skip in [0, 1, 128, 70_000, plain.len()] {
        let out = inflate_from(&f, e, skip, 1 << 20).unwrap();
        assert_eq!(out, plain[skip..], "skip {skip}");
        assert_eq!(out.capacity(), out.len(), "skip {skip}: one exact buffer");
    }
    let e = inflate_from(&f, e, plain.len() + 1, 1 << 20).unwrap_err();
    assert!(e.contains("fewer than the"), "{e}");
    // A stored member the same way.
    let f = build(&[stored("b.npy", &plain)], false);
    let e = &entries(&f).unwrap()[0];
    assert_eq!(inflate_from(&f, e, 10, 1 << 20).unwrap(), plain[10..]);
}

#[test]
fn a_declared_size_the_stream_does_not_match_is_refused() {
    let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    let packed = miniz_oxide::deflate::compress_to_vec(&plain, 6);
    let crc = crc32(&plain);
    let one = |usize_: u64, data: &[u8]| {
        let m = Member {
            name: "a.npy",
            method: DEFLATED,
            data,
            usize_,
            crc,
        };
        let f = build(&[m], false);
        let e = entries(&f).unwrap().remove(0);
        inflate_from(&f, &e, 4, 1 << 30)
    };
    let n = plain.len() as u64;
    // Declared larger than the stream: refused once the stream ends.
    let e = one(n * 2, &packed).unwrap_err();
    assert!(
        e.contains("inflates to 100000 bytes, not the 200000"),
        "{e}"
    );
    // Declared smaller: the bytes past it are noticed.
    let e = one(n - 1, &packed).unwrap_err();
    assert!(e.contains("more than the 99999"), "{e}");
    // The stream cut short.
    let e = one(n, &packed[..packed.len() / 2]).unwrap_err();
    assert!(e.contains("corrupt or truncated: it stops after"), "{e}");
    // And exactly right.
    assert_eq!(one(n, &packed).unwrap(), plain[4..]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for zip64 in [false, true] {
        let f = build(
            &[stored("x/data.pkl", b"0123456789"), stored("x/y", b"zz")],
            zip64,
        );
        for cut in 0..f.len() {
            if let Ok(es) = entries(&f[..cut]) {
                for e in &es {
                    let _ = stored_range(&f[..cut], e);
                }
            }
        }
        // Every single-byte corruption too.
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0xFF;
            if let Ok(es) = entries(&g) {
                for e in &es {
                    let _ = stored_range(&g, e);
                    let _ = inflate(&g, e, 1 << 16);
                }
            }
        }
    }
}

#[test]
fn lying_headers_are_refused() {
    let f = build(&[stored("a", b"0123456789")], false);
    let eocd = f.len() - EOCD_LEN;
    // More entries than the directory can hold.
    let mut g = f.clone();
    g[eocd + 10..eocd + 12].copy_from_slice(&60000u16.to_le_bytes());
    assert!(entries(&g).unwrap_err().contains("can hold at most"));
    // A directory offset past the end of the file.
    let mut g = f.clone();
    g[eocd + 16..eocd + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(entries(&g).unwrap_err().contains("ZIP64"));
    let mut g = f.clone();
    g[eocd + 16..eocd + 20].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert!(entries(&g).unwrap_err().contains("does not lie inside"));
    // A member size past the end of the file.
    let mut e = entries(&f).unwrap().remove(0);
    e.compressed_size = 1 << 62;
    e.uncompressed_size = 1 << 62;
    assert!(stored_range(&f, &e)
        .unwrap_err()
        .contains("run past the end"));
    e.compressed_size = u64::MAX;
    e.uncompressed_size = u64::MAX;
    assert!(stored_range(&f, &e).is_err());
    // A local header offset that points nowhere useful.
    let mut e = entries(&f).unwrap().remove(0);
    e.local_header_offset = 5;
    assert!(stored_range(&f, &e)
        .unwrap_err()
        .contains("no local file header"));
    e.local_header_offset = u64::MAX;
    assert!(stored_range(&f, &e)
        .unwrap_err()
        .contains("outside the file"));
    // Not a zip at all.
    assert!(entries(b"hello").unwrap_err().contains("too short"));
    assert!(entries(&[0u8; 100])
        .unwrap_err()
        .contains("end-of-central-directory"));
}

#[test]
fn duplicate_names_are_refused() {
    let f = build(&[stored("a", b"1"), stored("a", b"2")], false);
    assert!(entries(&f).unwrap_err().contains("twice"));
}
