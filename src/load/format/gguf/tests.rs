//! Unit tests of `gguf`.

use super::meta::*;
use super::*;

/// A GGUF string.
fn s(out: &mut Vec<u8>, v: &str) {
    out.extend((v.len() as u64).to_le_bytes());
    out.extend(v.as_bytes());
}

/// A v3 file: `kv` already encoded, one F32 tensor `t` of dims `[4, 2]`.
fn file(n_kv: u64, kv: &[u8], alignment: usize) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.extend(n_kv.to_le_bytes());
    f.extend(kv);
    s(&mut f, "t");
    f.extend(2u32.to_le_bytes());
    f.extend(4u64.to_le_bytes());
    f.extend(2u64.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.resize(f.len().next_multiple_of(alignment), 0);
    f.extend((0..8).flat_map(|i| (i as f32).to_le_bytes()));
    f
}

#[test]
fn minimal_file() {
    let g = parse(&file(0, &[], 32)).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors[0].shape, vec![2, 4]);
    assert_eq!(g.tensors[0].dtype, StoredDtype::F32);
    let r = g.ranges[0].clone().unwrap();
    assert_eq!(r.len(), 32);
    assert_eq!(r.start % 32, 0);
}

#[test]
fn every_value_type() {
    let mut kv = Vec::new();
    let mut n = 0;
    let mut add = |kv: &mut Vec<u8>, key: &str, t: u32, v: &[u8]| {
        s(kv, key);
        kv.extend(t.to_le_bytes());
        kv.extend(v);
        n += 1;
    };
    add(&mut kv, "u8", T_U8, &[7]);
    add(&mut kv, "i8", T_I8, &[0xFF]);
    add(&mut kv, "u16", T_U16, &500u16.to_le_bytes());
    add(&mut kv, "i16", T_I16, &(-500i16).to_le_bytes());
    add(&mut kv, "u32", T_U32, &70000u32.to_le_bytes());
    add(&mut kv, "i32", T_I32, &(-70000i32).to_le_bytes());
    add(&mut kv, "f32", T_F32, &1.5f32.to_le_bytes());
    add(&mut kv, "bool", T_BOOL, &[1]);
    let mut st = Vec::new();
    s(&mut st, "héllo");
    add(&mut kv, "str", T_STRING, &st);
    add(&mut kv, "u64", T_U64, &(1u64 << 40).to_le_bytes());
    add(&mut kv, "i64", T_I64, &(-1i64 << 40).to_le_bytes());
    add(&mut kv, "f64", T_F64, &0.25f64.to_le_bytes());
    // [[1, 2], []] of u16.
    let mut arr = T_ARRAY.to_le_bytes().to_vec();
    arr.extend(2u64.to_le_bytes());
    arr.extend(T_U16.to_le_bytes());
    arr.extend(2u64.to_le_bytes());
    arr.extend([1, 0, 2, 0]);
    arr.extend(T_U16.to_le_bytes());
    arr.extend(0u64.to_le_bytes());
    add(&mut kv, "nested", T_ARRAY, &arr);
    let g = parse(&file(n, &kv, 32)).unwrap();
    assert_eq!(g.get("u8"), Some(&MetaValue::U8(7)));
    assert_eq!(g.get("i8"), Some(&MetaValue::I8(-1)));
    assert_eq!(g.get("i16"), Some(&MetaValue::I16(-500)));
    assert_eq!(g.get("i32"), Some(&MetaValue::I32(-70000)));
    assert_eq!(g.get("f32"), Some(&MetaValue::F32(1.5)));
    assert_eq!(g.get("bool"), Some(&MetaValue::Bool(true)));
    assert_eq!(g.get("str"), Some(&MetaValue::String("héllo".into())));
    assert_eq!(g.get("i64"), Some(&MetaValue::I64(-1 << 40)));
    assert_eq!(g.get("f64"), Some(&MetaValue::F64(0.25)));
    assert_eq!(
        g.get("nested"),
        Some(&MetaValue::Array(MetaArray::Array(vec![
            MetaArray::U16(vec![1, 2]),
            MetaArray::U16(vec![])
        ])))
    );
}

#[test]
fn alignment_is_used_and_checked() {
    let mut kv = Vec::new();
    s(&mut kv, "general.alignment");
    kv.extend(T_U32.to_le_bytes());
    kv.extend(64u32.to_le_bytes());
    let g = parse(&file(1, &kv, 64)).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_start % 64, 0);
    for bad in [0u32, 48] {
        let mut kv = Vec::new();
        s(&mut kv, "general.alignment");
        kv.extend(T_U32.to_le_bytes());
        kv.extend(bad.to_le_bytes());
        let e = parse(&file(1, &kv, 64)).unwrap_err();
        assert!(e.contains("power of two"), "{e}");
    }
}

#[test]
fn huge_counts_fail_before_allocating() {
    let mut f = file(0, &[], 32);
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse(&f).unwrap_err().contains("could hold"));
    let mut f = file(0, &[], 32);
    f[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(parse(&f).unwrap_err().contains("could hold"));
    // A string array claiming 2^61 elements.
    let mut kv = Vec::new();
    s(&mut kv, "a");
    kv.extend(T_ARRAY.to_le_bytes());
    kv.extend(T_STRING.to_le_bytes());
    kv.extend((1u64 << 61).to_le_bytes());
    let e = parse(&file(1, &kv, 32)).unwrap_err();
    assert!(e.contains("could hold"), "{e}");
}

#[test]
fn counts_size_nothing_a_file_of_zeros_fails_at_its_second_entry() {
    // Counts the bytes can back (13 per entry, 24 per tensor), over
    // zeros: empty names, so the second entry is a duplicate.
    let mut f = vec![0u8; 1 << 16];
    let left = f.len() as u64 - 24;
    f[..4].copy_from_slice(b"GGUF");
    f[4..8].copy_from_slice(&3u32.to_le_bytes());
    f[16..24].copy_from_slice(&(left / 13).to_le_bytes());
    let e = parse(&f).unwrap_err();
    assert_eq!(e, "metadata key \"\" appears twice");
    f[8..16].copy_from_slice(&(left / 24).to_le_bytes());
    f[16..24].copy_from_slice(&0u64.to_le_bytes());
    let e = parse(&f).unwrap_err();
    assert_eq!(e, "tensor \"\" appears twice");
}

#[test]
fn the_header_memory_budget_counts_what_entries_take_in_memory() {
    // 1000 empty strings: 8 bytes each in the file, a String (24
    // bytes) each in memory.
    let mut kv = Vec::new();
    s(&mut kv, "a");
    kv.extend(T_ARRAY.to_le_bytes());
    kv.extend(T_STRING.to_le_bytes());
    kv.extend(1000u64.to_le_bytes());
    kv.extend([0u8; 8000]);
    let f = file(1, &kv, 32);
    let entry = size_of::<(String, MetaValue)>() + 1 + 2 * size_of::<&str>();
    let strings = 1000 * size_of::<String>();
    let tensor = size_of::<TensorDesc>() + 400;
    let e = parse_within(&f, entry + strings - 1).unwrap_err();
    assert!(
        e.starts_with("array \"a\" of 1000 elements would take"),
        "{e}"
    );
    let g = parse_within(&f, entry + strings + tensor).unwrap();
    assert_eq!(
        g.get("a"),
        Some(&MetaValue::Array(MetaArray::String(vec![
            String::new();
            1000
        ])))
    );
    // So does a U8 array as large as the budget, and many small keys.
    let mut kv = Vec::new();
    s(&mut kv, "b");
    kv.extend(T_ARRAY.to_le_bytes());
    kv.extend(T_U8.to_le_bytes());
    kv.extend(5000u64.to_le_bytes());
    kv.extend([7u8; 5000]);
    let e = parse_within(&file(1, &kv, 32), 4000).unwrap_err();
    assert!(e.contains("past 1073741824 bytes"), "{e}");
    let mut kv = Vec::new();
    for i in 0..100 {
        s(&mut kv, &format!("k{i}"));
        kv.extend(T_U8.to_le_bytes());
        kv.push(1);
    }
    let e = parse_within(&file(100, &kv, 32), 50 * entry).unwrap_err();
    assert!(e.starts_with("metadata key 4"), "{e}");
}

#[test]
fn every_prefix_fails_cleanly() {
    let f = file(0, &[], 32);
    for n in 0..f.len() {
        assert!(parse(&f[..n]).is_err(), "prefix of {n} bytes parsed");
    }
}

#[test]
fn deep_nesting_is_refused() {
    let mut kv = Vec::new();
    s(&mut kv, "deep");
    kv.extend(T_ARRAY.to_le_bytes());
    for _ in 0..100 {
        kv.extend(T_ARRAY.to_le_bytes());
        kv.extend(1u64.to_le_bytes());
    }
    kv.extend(T_U8.to_le_bytes());
    kv.extend(0u64.to_le_bytes());
    let e = parse(&file(1, &kv, 32)).unwrap_err();
    assert!(e.contains("nests"), "{e}");
}
