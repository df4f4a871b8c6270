//! The matrices: the three generated clouds with their dead structure,
//! slices of them, and the real matrices, each a safetensors file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use singularity_gpu::{load, Dtype, LoadOptions};

use crate::common::{mix, normal, scatter, write_bf16, KEY};
use crate::{
    Args, CLUSTERS, DATA_VERSION, DEAD_NORM, DEAD_VECTORS, HOLES, MAX_OFFSET, SINGLES, SPREAD,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cloud {
    Steep,
    Flat,
    Clustered,
}

impl Cloud {
    pub fn parse(s: &str) -> Option<Cloud> {
        match s {
            "steep" => Some(Cloud::Steep),
            "flat" => Some(Cloud::Flat),
            "clustered" => Some(Cloud::Clustered),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Steep => "steep",
            Cloud::Flat => "flat",
            Cloud::Clustered => "clustered",
        }
    }
    pub fn describe(self) -> String {
        match self {
            Cloud::Steep => "steep spectrum: per-dimension std (c+1)^-1/2, norms 1 ± 10%".into(),
            Cloud::Flat => "flat: per-dimension scales uniform in [1, 3], norms 1 ± 10%".into(),
            Cloud::Clustered => format!(
                "clustered: {CLUSTERS} Gaussian clusters, centres of norm 1, member spread s in [{}, {}] (L2 from the centre), norms about 1",
                SPREAD.0, SPREAD.1
            ),
        }
    }
}

/// Which dead vector each row holds, if any: vectors 0–12 are the black
/// holes (largest first), 13–124 the single tokens; ids scattered.
pub fn dead_assignment(n: usize) -> Vec<Option<u8>> {
    let sizes = HOLES.iter().copied().chain(std::iter::repeat_n(1, SINGLES));
    scatter(n, sizes, 0xdead_0000)
}

/// The bf16 bits of the dead vectors. Vector 0 is the dead point, a random
/// vector of norm [`DEAD_NORM`] rounded to bf16; every other vector moves
/// about 40% of its coordinates by 1 to [`MAX_OFFSET`] steps up or down
/// (adding to the bits of a normal bf16 value moves it by that many steps).
/// The moves are random, so the 125 vectors are distinct (asserted).
pub fn dead_vectors(d: usize) -> Vec<Vec<u16>> {
    let raw: Vec<f32> = (0..d)
        .map(|c| normal(mix(0xb1ac_0000 ^ c as u64)))
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    let base: Vec<u16> = raw
        .iter()
        .map(|x| {
            let b = half::bf16::from_f32(x * DEAD_NORM / norm).to_bits();
            // Keep every coordinate a normal number well away from zero, so
            // that moving its bits by ±5 stays on the same side of zero.
            if b & 0x7f80 == 0 {
                half::bf16::from_f32(1e-4).to_bits()
            } else {
                b
            }
        })
        .collect();
    let vectors: Vec<Vec<u16>> = (0..DEAD_VECTORS as u64)
        .map(|v| {
            let mut row = base.clone();
            if v > 0 {
                for (c, x) in row.iter_mut().enumerate() {
                    let r = mix((v << 32) ^ c as u64 ^ 0x0ff5_e700_0000_0000);
                    if r % 10 < 4 {
                        let steps = 1 + ((r >> 8) % MAX_OFFSET) as u16;
                        *x = if (r >> 16) & 1 == 0 {
                            *x + steps
                        } else {
                            *x - steps
                        };
                    }
                }
            }
            row
        })
        .collect();
    let mut sorted = vectors.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), DEAD_VECTORS, "the dead vectors are distinct");
    vectors
}

/// A uniform value in [0, 1) from 64 random bits.
pub fn uniform(r: u64) -> f32 {
    (r >> 40) as f32 / (1u64 << 24) as f32
}

/// The clustered cloud's centres (norm 1, isotropic) and spreads.
pub fn clusters(d: usize) -> (Vec<Vec<f32>>, Vec<f32>) {
    let centres = (0..CLUSTERS as u64)
        .map(|j| {
            let x: Vec<f32> = (0..d as u64)
                .map(|c| normal(mix(0xc1c1_0000_0000 ^ (j << 24) ^ c)))
                .collect();
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            x.iter().map(|v| v / norm).collect()
        })
        .collect();
    let spreads = (0..CLUSTERS as u64)
        .map(|j| SPREAD.0 + (SPREAD.1 - SPREAD.0) * uniform(mix(0x5b4e_ad00 ^ j)))
        .collect();
    (centres, spreads)
}

/// One trained token of `cloud`.
pub fn trained_row(cloud: Cloud, r: usize, out: &mut [u16], cl: &(Vec<Vec<f32>>, Vec<f32>)) {
    let d = out.len();
    let g = |c: usize, salt: u64| normal(mix(((r as u64) << 24) ^ c as u64 ^ salt));
    let x: Vec<f32> = match cloud {
        Cloud::Steep => (0..d).map(|c| g(c, 0) / ((c + 1) as f32).sqrt()).collect(),
        Cloud::Flat => (0..d)
            .map(|c| g(c, 0xf1a7 << 48) * (1.0 + 2.0 * uniform(mix(0xf1a7_5ca1 ^ c as u64))))
            .collect(),
        Cloud::Clustered => {
            let j = (mix(0xc1a5_0000_0000 ^ r as u64) % CLUSTERS as u64) as usize;
            let s = cl.1[j] / (d as f32).sqrt();
            let centre = &cl.0[j];
            let bits =
                (0..d).map(|c| half::bf16::from_f32(centre[c] + s * g(c, 0xc1 << 56)).to_bits());
            for (o, b) in out.iter_mut().zip(bits) {
                *o = b;
            }
            return;
        }
    };
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    let target = 1.0 + 0.1 * normal(mix(0x9042_0000_0000 ^ r as u64));
    for (o, v) in out.iter_mut().zip(&x) {
        *o = half::bf16::from_f32(*v * target / norm).to_bits();
    }
}

/// One matrix the rows run on: a safetensors file (tensor [`KEY`]) and what
/// the checks know of it.
#[derive(Clone)]
pub struct Case {
    pub title: String,
    /// Used in file names.
    pub key: String,
    pub path: PathBuf,
    pub offset: u64,
    pub dtype: Dtype,
    pub n: usize,
    pub d: usize,
    /// The planted dead tokens, ascending; `None` for a real matrix.
    pub dead: Option<Vec<usize>>,
    /// What the matrix is, for the table's heading.
    pub about: String,
}

impl Case {
    pub fn stored(&self) -> usize {
        self.n * self.d * self.dtype.size()
    }
}

pub fn dtype_name(dt: Dtype) -> &'static str {
    match dt {
        Dtype::BF16 => "BF16",
        Dtype::F16 => "F16",
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
    }
}

/// Writes `bytes` as a one-tensor safetensors file (unless one of that size
/// is there); returns the data offset.
pub fn write_tensor(
    path: &Path,
    dt: Dtype,
    n: usize,
    d: usize,
    bytes: &[u8],
) -> std::io::Result<u64> {
    let header = format!(
        "{{\"{KEY}\":{{\"dtype\":\"{}\",\"shape\":[{n},{d}],\"data_offsets\":[0,{}]}}}}",
        dtype_name(dt),
        bytes.len()
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let offset = 8 + header.len() as u64;
    if std::fs::metadata(path).map(|m| m.len()).ok() == Some(offset + bytes.len() as u64) {
        return Ok(offset);
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension("partial");
    let mut all = (header.len() as u64).to_le_bytes().to_vec();
    all.extend_from_slice(&header);
    all.extend_from_slice(bytes);
    std::fs::write(&tmp, all)?;
    std::fs::rename(&tmp, path).map(|_| offset)
}

pub fn map(path: &Path) -> memmap2::Mmap {
    let file = std::fs::File::open(path).expect("open the benchmark matrix");
    // SAFETY: read-only map of a file this benchmark wrote and nobody changes.
    unsafe { memmap2::Mmap::map(&file) }.expect("map the benchmark matrix")
}

pub fn cloud_case(a: &Args, cloud: Cloud) -> Case {
    let (n, d) = (a.n, a.d);
    assert!(
        n >= 4 * HOLES.iter().sum::<usize>() + 4 * SINGLES,
        "{n} rows: too few for the dead structure"
    );
    let path = a.data.join(format!(
        "allpairs-v{DATA_VERSION}-{}_bf16_{n}x{d}.safetensors",
        cloud.name()
    ));
    let t = Instant::now();
    let dead = dead_vectors(d);
    let who = dead_assignment(n);
    let cl = if cloud == Cloud::Clustered {
        clusters(d)
    } else {
        (Vec::new(), Vec::new())
    };
    let offset = write_bf16(&path, n, d, |r, out| match who[r] {
        Some(v) => out.copy_from_slice(&dead[v as usize]),
        None => trained_row(cloud, r, out, &cl),
    })
    .expect("write the benchmark matrix");
    eprintln!(
        "{}: {} ({:.1} s)",
        cloud.name(),
        path.display(),
        t.elapsed().as_secs_f64()
    );
    Case {
        title: format!("{} cloud", cloud.name()),
        key: cloud.name().into(),
        path,
        offset,
        dtype: Dtype::BF16,
        n,
        d,
        dead: Some((0..n).filter(|&r| who[r].is_some()).collect()),
        about: cloud.describe(),
    }
}

/// `size` rows of `case` as a file of their own: all dead rows and the first
/// others, in id order (the first rows of a real matrix).
pub fn slice_case(a: &Args, case: &Case, size: usize) -> Case {
    let ids: Vec<usize> = match &case.dead {
        Some(dead) => {
            let mut trained = 0;
            (0..case.n)
                .filter(|r| {
                    dead.binary_search(r).is_ok() || {
                        trained += 1;
                        trained + dead.len() <= size
                    }
                })
                .collect()
        }
        None => (0..size).collect(),
    };
    let mapped = map(&case.path);
    let rb = case.d * case.dtype.size();
    let base = case.offset as usize;
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&r| mapped[base + r * rb..base + (r + 1) * rb].iter().copied())
        .collect();
    let path = a.data.join(format!(
        "{}-slice{size}.safetensors",
        case.path
            .file_stem()
            .map_or("x".into(), |s| s.to_string_lossy())
    ));
    let offset = write_tensor(&path, case.dtype, size, case.d, &bytes).expect("write a slice");
    Case {
        title: format!("{}, {size}-row slice", case.title),
        key: format!("{}-slice{size}", case.key),
        path,
        offset,
        dtype: case.dtype,
        n: size,
        d: case.d,
        dead: case.dead.as_ref().map(|dead| {
            (0..size)
                .filter(|&i| dead.binary_search(&ids[i]).is_ok())
                .collect()
        }),
        about: case.about.clone(),
    }
}

/// The real matrices that are on this machine, each copied to a safetensors file.
pub fn real_cases(a: &Args) -> Vec<Case> {
    let fetched = match std::env::var_os("SG_REALDATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/singularity-gpu/realdata"),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let thimble = [
        PathBuf::from("/work/shared/realdata/thimble9_checkpoint_step_00000.pt"),
        manifest.join("tests/fixtures/thimble9/checkpoint_step_00000.pt"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("thimble9_checkpoint_step_00000.pt"));
    let sources: [(&str, &str, PathBuf, Option<&str>); 3] = [
        (
            "minilm",
            "MiniLM-L6-v2",
            fetched.join("minilm_l6_v2.safetensors"),
            Some("embeddings.word_embeddings.weight"),
        ),
        (
            "wordllama",
            "WordLlama",
            fetched.join("wordllama_l2_supercat_256.safetensors"),
            Some("embedding.weight"),
        ),
        ("thimble9", "Thimble-9 step 0", thimble, None),
    ];
    let mut cases = Vec::new();
    for (key, name, path, tensor) in sources {
        if !path.exists() {
            println!(
                "skipping {name}: {} is missing (`bash scripts/fetch_realdata.sh` fetches it)",
                path.display()
            );
            continue;
        }
        let opts = LoadOptions {
            key: tensor.map(String::from),
            ..Default::default()
        };
        let loaded = match load::open(&path, &opts) {
            Ok(l) => l,
            Err(e) => {
                println!("skipping {name}: {e}");
                continue;
            }
        };
        let m = loaded.matrix();
        let copy = a.data.join(format!("real-{key}.safetensors"));
        let offset =
            write_tensor(&copy, m.dtype, m.rows, m.cols, m.bytes).expect("write a real matrix");
        cases.push(Case {
            title: format!(
                "{name} ({} {}×{}, `{}`)",
                dtype_name(m.dtype).to_lowercase(),
                m.rows,
                m.cols,
                loaded.info.name
            ),
            key: key.into(),
            path: copy,
            offset,
            dtype: m.dtype,
            n: m.rows,
            d: m.cols,
            dead: None,
            about: format!(
                "{}, surveyed from a safetensors copy of its bytes",
                path.display()
            ),
        });
    }
    cases
}

/// A distinct-vector label per row (bit-identical rows share one), and how many.
pub fn labels(case: &Case) -> (Vec<i32>, usize) {
    let mapped = map(&case.path);
    let rb = case.d * case.dtype.size();
    let base = case.offset as usize;
    let mut seen: HashMap<&[u8], i32> = HashMap::new();
    let labels = (0..case.n)
        .map(|r| {
            let next = seen.len() as i32;
            *seen
                .entry(&mapped[base + r * rb..base + (r + 1) * rb])
                .or_insert(next)
        })
        .collect();
    (labels, seen.len())
}
