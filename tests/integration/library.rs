//! The library as a program holding its matrix in memory calls it (the
//! Python package does): `survey_matrix` on a matrix in memory gives what
//! the binary gives on the same bytes in a file; the `Recorder` fed a run's
//! steps gives what `--series` gives on its checkpoints; one engine per
//! process and choice; an `Interrupt` stops a call.

use serde_json::Value;
use singularity_gpu::engine::{self, SharedEngine};
use singularity_gpu::{
    DeviceChoice, Dtype, Error, IndicatorOptions, Interrupt, LoadOptions, Matrix, NearThreshold,
    PairOptions, Recorder, SurveyOptions,
};
use tempfile::TempDir;

use crate::common::*;

/// The engines to check: the CPU, and the GPU when there is an adapter.
fn engines() -> Vec<SharedEngine> {
    let mut out = vec![engine::shared(DeviceChoice::Cpu).unwrap().0];
    if gpu().is_some() {
        out.push(engine::shared(DeviceChoice::Gpu).unwrap().0);
    }
    out
}

fn options() -> SurveyOptions {
    SurveyOptions {
        pairs: PairOptions {
            nearest: true,
            near: Some(NearThreshold::Ulp(2)),
        },
        indicators: Some(IndicatorOptions::default()),
        ..Default::default()
    }
}

/// A document without what names where the matrix came from or how long it took.
fn comparable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for k in ["file", "format", "tensor", "timings_ms", "device"] {
        o.remove(k);
    }
    if let Some(i) = o.get_mut("indicators").and_then(Value::as_object_mut) {
        i.remove("matrix");
    }
    v
}

/// The first path at which two documents differ, if any.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(u, v, &format!("{path}.{k}")),
                (u, v) => Some(format!(
                    "{path}.{k}: {:?} vs {:?}",
                    u.is_some(),
                    v.is_some()
                )),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// A bf16 matrix with two holes and a few tokens one step from them.
fn built() -> Built {
    let mut b = Built::random(Dtype::BF16, 500, 24, 5);
    for t in [7, 70, 170] {
        b.copy_row(3, t);
    }
    b.copy_row(9, 99);
    for t in [200, 201] {
        b.copy_row(3, t);
        b.set_bits(t, t % 24, b.get_bits(3, t % 24) + 1);
    }
    b
}

#[test]
fn a_matrix_in_memory_is_surveyed_as_the_same_bytes_in_a_file() {
    let b = built();
    let dir = TempDir::new().unwrap();
    let header = format!(
        r#"{{"emb":{{"dtype":"BF16","shape":[{},{}],"data_offsets":[0,{}]}}}}"#,
        b.rows,
        b.cols,
        b.bytes.len()
    );
    let file = write(&dir, "m.safetensors", &safetensors(&header, &b.bytes));
    for engine in engines() {
        // The binary on the same engine (the GPU sums norms in f32).
        let device = if engine.device().backend == "rayon" {
            "cpu"
        } else {
            "gpu"
        };
        let mut cmd = sg();
        cmd.args(["--device", device, "--json", "--file"])
            .arg(&file)
            .args(["--nearest", "--near-ulp", "2", "--indicators"]);
        let want = comparable(json_report(&mut cmd));
        assert_eq!(want["groups"].as_array().unwrap().len(), 2);
        let m = b.matrix();
        let got = singularity_gpu::survey_matrix(engine.as_ref(), &m, &options(), None, "array")
            .expect("survey_matrix");
        assert_eq!(got.file, "array");
        assert_eq!(got.norms.len(), b.rows);
        // Through text as the binary's is (serde_json reads floats back
        // within an ulp, not always exactly).
        let got = comparable(serde_json::from_str(&serde_json::to_string(&got).unwrap()).unwrap());
        let diff = first_difference(&got, &want, "");
        assert!(diff.is_none(), "on {:?}: {diff:?}", engine.device().adapter);
    }
}

#[test]
fn the_recorder_fed_a_runs_steps_reports_what_series_reports() {
    let run = root().join("tests/fixtures/series/run");
    let mut steps: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let n = p.file_stem().unwrap().to_str().unwrap();
            (n.trim_start_matches("step_").parse().unwrap(), p)
        })
        .collect();
    steps.sort();
    let mut cmd = sg();
    cmd.args(["--device", "cpu", "--json", "--series"])
        .arg(&run);
    let want = json_report(&mut cmd);
    for engine in engines() {
        let mut rec = Recorder::new(engine.clone(), None);
        for (step, path) in &steps {
            let loaded = singularity_gpu::open(path, &LoadOptions::default()).unwrap();
            // A training loop's tensor changes in place between pushes:
            // push from one buffer, overwritten each step.
            let bytes = loaded.matrix().bytes.to_vec();
            let m = Matrix::new(loaded.dtype, loaded.rows, loaded.cols, &bytes).unwrap();
            rec.push(*step, &m).unwrap();
        }
        let got: Value =
            serde_json::from_str(&serde_json::to_string(&rec.result().unwrap()).unwrap()).unwrap();
        let diff = first_difference(&got["series"], &want["series"], "series");
        assert!(diff.is_none(), "on {:?}: {diff:?}", engine.device().adapter);
        assert_eq!(got["shape"], want["shape"]);
        assert_eq!(got["kind"], "recorded");
    }
}

#[test]
fn a_recorder_refuses_steps_out_of_order_or_of_another_shape() {
    let b = built();
    let mut rec = Recorder::new(engine::shared(DeviceChoice::Cpu).unwrap().0, None);
    assert!(matches!(rec.result(), Err(Error::Usage(_))));
    rec.push(5, &b.matrix()).unwrap();
    let e = rec.push(5, &b.matrix()).unwrap_err().to_string();
    assert!(e.contains("steps must increase"), "{e}");
    let half = Matrix::new(Dtype::BF16, 250, 24, &b.bytes[..250 * 48]).unwrap();
    let e = rec.push(6, &half).unwrap_err().to_string();
    assert!(e.contains("250×24"), "{e}");
}

#[test]
fn one_engine_serves_every_call_of_a_process() {
    let (a, _) = engine::shared(DeviceChoice::Cpu).unwrap();
    let (b, _) = engine::shared(DeviceChoice::Cpu).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    if gpu().is_some() {
        let (g1, _) = engine::shared(DeviceChoice::Gpu).unwrap();
        let (g2, _) = engine::shared(DeviceChoice::Gpu).unwrap();
        assert!(std::sync::Arc::ptr_eq(&g1, &g2));
        assert!(!engine::adapters().is_empty());
    }
}

#[test]
fn an_interrupt_stops_a_survey_and_a_series() {
    let b = built();
    for engine in engines() {
        let interrupt = Interrupt::new();
        interrupt.set();
        let opts = SurveyOptions {
            interrupt: Some(interrupt.clone()),
            ..options()
        };
        let r = singularity_gpu::survey_matrix(engine.as_ref(), &b.matrix(), &opts, None, "x");
        assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
    }
    let opts = singularity_gpu::SeriesOptions {
        device: DeviceChoice::Cpu,
        interrupt: Some({
            let i = Interrupt::new();
            i.set();
            i
        }),
        ..Default::default()
    };
    let input = singularity_gpu::SeriesInput::Files(vec![root().join("tests/fixtures/series/run")]);
    let r = singularity_gpu::survey_series(&input, &opts);
    assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
}

#[test]
fn the_all_pairs_kernels_stop_when_interrupted() {
    use singularity_gpu::engine::VectorSet;
    use singularity_gpu::progress::Progress;
    let b = built();
    let m = b.matrix();
    let rows: Vec<usize> = (0..b.rows).collect();
    let labels: Vec<u32> = (0..b.rows as u32).collect();
    let set = VectorSet {
        rows: &rows,
        labels: &labels,
    };
    for engine in engines() {
        let interrupt = Interrupt::new();
        let progress = Progress::hidden().with_interrupt(Some(&interrupt));
        // Not set: the kernels run.
        assert!(engine.nearest_approx(&m, set, &labels, &progress).is_ok());
        interrupt.set();
        let r = engine.nearest_approx(&m, set, &labels, &progress);
        assert!(matches!(r, Err(Error::Interrupted)));
        let thresholds = vec![1.0f32; labels.len()];
        let r = engine.pairs_within(&m, set, &labels, &thresholds, &progress);
        assert!(matches!(r, Err(Error::Interrupted)));
    }
}

#[test]
fn an_interrupt_during_a_gpu_sweep_gives_control_back() {
    use singularity_gpu::engine::VectorSet;
    use singularity_gpu::progress::Progress;
    if gpu().is_none() {
        return;
    }
    let engine = engine::shared(DeviceChoice::Gpu).unwrap().0;
    // One chunk pair holds the whole sweep (seconds of work on a software
    // GPU): the interrupt must reach the wait for it.
    let b = Built::random(Dtype::F32, 6000, 96, 9);
    let m = b.matrix();
    let rows: Vec<usize> = (0..b.rows).collect();
    let labels: Vec<u32> = (0..b.rows as u32).collect();
    let set = VectorSet {
        rows: &rows,
        labels: &labels,
    };
    let interrupt = Interrupt::new();
    let progress = Progress::hidden().with_interrupt(Some(&interrupt));
    let setter = {
        let i = interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            i.set();
        })
    };
    let r = engine.nearest_approx(&m, set, &labels, &progress);
    setter.join().unwrap();
    assert!(matches!(r, Err(Error::Interrupted)), "{:?}", r.map(|_| ()));
    // The engine goes on serving.
    let small = Built::random(Dtype::F32, 50, 8, 3);
    let rows: Vec<usize> = (0..50).collect();
    let labels: Vec<u32> = (0..50).collect();
    let set = VectorSet {
        rows: &rows,
        labels: &labels,
    };
    assert!(engine
        .nearest_approx(&small.matrix(), set, &labels, &Progress::hidden())
        .is_ok());
}
