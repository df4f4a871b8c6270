//! The parent's side: each row's process and its peak RSS, the numpy peer,
//! and the rows of one matrix with their checks.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use singularity_gpu::NearestPaths;

use crate::common::{self, fmt_time, read_pass};
use crate::data::{dtype_name, labels, map, slice_case, Case};
use crate::Args;

/// What a child process gave back.
pub struct ChildRun {
    /// Its JSON line, or why there is none.
    pub out: Result<Value, String>,
    pub peak_kib: u64,
}

impl ChildRun {
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.out
            .as_ref()
            .ok()
            .map(|v| &v[k])
            .filter(|v| !v.is_null())
    }
    pub fn time(&self) -> Option<f64> {
        self.get("time_s")?.as_f64()
    }
    pub fn paths(&self) -> Option<NearestPaths> {
        let p = self.get("paths")?;
        let u = |k: &str| p[k].as_u64().map(|x| x as usize);
        Some(NearestPaths {
            queries: u("queries")?,
            alone: u("alone")?,
            among_candidates: u("among")?,
            slow: u("slow")?,
        })
    }
    pub fn tokens(&self, k: &str) -> Option<Vec<usize>> {
        let v = self.get(k)?.as_array()?;
        Some(
            v.iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect(),
        )
    }
}

/// Runs this binary with `--child`; its peak RSS is the child's `VmHWM`
/// (or, without one, `wait4`'s `ru_maxrss`).
pub fn run_child(a: &Args, case: &Case, row: &str, gpu: bool, dump: Option<&Path>) -> ChildRun {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut cmd = Command::new(exe);
    cmd.args(["--child", row, "--engine", if gpu { "gpu" } else { "cpu" }])
        .arg("--file")
        .arg(&case.path)
        .args(["--reps", &a.reps.to_string()]);
    if a.software_gpu {
        cmd.arg("--software-gpu");
    }
    if let Some(p) = dump {
        cmd.arg("--dump").arg(p);
    }
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn() {
        Ok(c) => c,
        Err(e) => {
            return ChildRun {
                out: Err(format!("cannot start: {e}")),
                peak_kib: 0,
            }
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let (status, peak_kib) = loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if timed_out { 0 } else { libc::WNOHANG };
        // SAFETY: waits on our own child, whose pid we hold and nobody else reaps.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == pid {
            break (status, ru.ru_maxrss.max(0) as u64);
        }
        if r < 0 {
            return ChildRun {
                out: Err("wait4 failed".into()),
                peak_kib: 0,
            };
        }
        if start.elapsed().as_secs_f64() > a.child_timeout {
            // SAFETY: signals our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            timed_out = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    let out = if timed_out {
        Err(format!(
            "killed after {:.0} s (--child-timeout)",
            a.child_timeout
        ))
    } else if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        Err(if libc::WIFEXITED(status) {
            format!("exit {}", libc::WEXITSTATUS(status))
        } else {
            format!("signal {}", libc::WTERMSIG(status))
        })
    } else {
        text.lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| "no result".to_string())
    };
    if let Err(e) = &out {
        eprintln!(
            "  {row} ({}) on {}: {e}",
            if gpu { "GPU" } else { "CPU" },
            case.title
        );
    }
    // The child's own high-water mark where it has one; else wait4's.
    let peak_kib = out
        .as_ref()
        .ok()
        .and_then(|v: &Value| v["vm_hwm_kib"].as_u64())
        .unwrap_or(peak_kib);
    ChildRun { out, peak_kib }
}

/// One task of the numpy peer.
#[derive(Clone)]
pub struct PeerRun {
    pub prep: f64,
    pub compute: f64,
    pub measured_blocks: u64,
    pub blocks: u64,
    /// NN distances off by more than 1%, of those checked.
    pub off: Option<(u64, u64)>,
}

impl PeerRun {
    pub fn total(&self) -> f64 {
        self.prep + self.compute
    }
    pub fn extrapolated(&self) -> bool {
        self.measured_blocks < self.blocks
    }
    pub fn cell(&self) -> String {
        let mut s = fmt_time(secs(self.total()));
        if self.extrapolated() {
            let _ = write!(
                s,
                " (extrapolated from {}/{} blocks)",
                self.measured_blocks, self.blocks
            );
        }
        s
    }
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Runs the numpy peer on `case` for `tasks`; `None` per task it did not run.
pub fn run_peer(
    a: &Args,
    case: &Case,
    labels: &[i32],
    tasks: &[String],
    exact: Option<&Path>,
) -> Vec<Option<PeerRun>> {
    let none = vec![None; tasks.len()];
    if !a.peers || tasks.is_empty() {
        return none;
    }
    let Some(script) = common::script("bench_allpairs_peer.py") else {
        eprintln!("  numpy peer: scripts/bench_allpairs_peer.py not found");
        return none;
    };
    let labels_path = case.path.with_extension("labels.i32");
    let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    std::fs::write(&labels_path, bytes).expect("write labels");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(&case.path)
        .arg(case.offset.to_string())
        .arg(dtype_name(case.dtype))
        .args([case.n, case.d].map(|x| x.to_string()))
        .arg(&labels_path)
        .arg(a.peer_budget.to_string())
        .args(tasks);
    if let Some(p) = exact {
        cmd.arg("--exact").arg(p);
    }
    eprintln!("  numpy {} on {}", tasks.join(" "), case.title);
    let out = match cmd.stderr(Stdio::inherit()).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("  numpy peer: exit {:?}", o.status.code());
            return none;
        }
        Err(e) => {
            eprintln!("  numpy peer: {e}");
            return none;
        }
    };
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    tasks
        .iter()
        .map(|t| {
            let v = lines.iter().find(|v| v["task"] == t.as_str())?;
            Some(PeerRun {
                prep: v["prep_s"].as_f64()?,
                compute: v["compute_s"].as_f64()?,
                measured_blocks: v["measured_blocks"].as_u64()?,
                blocks: v["blocks"].as_u64()?,
                off: v["off"].as_u64().zip(v["checked"].as_u64()),
            })
        })
        .collect()
}

/// A time in a table cell.
#[derive(Clone)]
pub enum Time {
    Measured(f64, usize),
    /// Seconds and how they were estimated.
    Extrapolated(f64, String),
    Failed(String),
    NotRun,
}

impl Time {
    pub fn of(run: &ChildRun) -> Time {
        match (&run.out, run.time()) {
            (Ok(v), Some(t)) => Time::Measured(t, v["runs"].as_u64().unwrap_or(1) as usize),
            (Err(e), _) => Time::Failed(e.clone()),
            _ => Time::Failed("no time".into()),
        }
    }
    pub fn secs(&self) -> Option<f64> {
        match self {
            Time::Measured(s, _) | Time::Extrapolated(s, _) => Some(*s),
            _ => None,
        }
    }
    pub fn extrapolated(&self) -> bool {
        matches!(self, Time::Extrapolated(..))
    }
    pub fn cell(&self) -> String {
        match self {
            Time::Measured(s, 1) => format!("{} (1 run)", fmt_time(secs(*s))),
            Time::Measured(s, n) => format!("{} (median of {n})", fmt_time(secs(*s))),
            Time::Extrapolated(s, how) => format!("{} (extrapolated: {how})", fmt_time(secs(*s))),
            Time::Failed(e) => format!("failed: {e}"),
            Time::NotRun => "not run".into(),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Nn,
    Threshold,
}

/// One table row.
pub struct Row {
    pub name: String,
    pub kind: Kind,
    /// Rows of the matrix it ran on, and its stored bytes.
    pub n: usize,
    pub stored: usize,
    pub full: bool,
    pub cpu: Time,
    pub gpu: Time,
    pub cpu_run: Option<ChildRun>,
    pub peer: Option<PeerRun>,
    /// A note on the peer cell.
    pub peer_note: String,
    pub checks: Vec<String>,
}

impl Row {
    pub fn new(name: String, kind: Kind, case: &Case, full: bool) -> Row {
        Row {
            name,
            kind,
            n: case.n,
            stored: case.stored(),
            full,
            cpu: Time::NotRun,
            gpu: Time::NotRun,
            cpu_run: None,
            peer: None,
            peer_note: String::new(),
            checks: Vec::new(),
        }
    }
}

/// Everything measured on one matrix.
pub struct CaseReport {
    pub case: Case,
    pub distinct: usize,
    pub read_pass: f64,
    pub survey: Option<f64>,
    pub base_kib: u64,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Runs one row on each engine; records times and the GPU = CPU check.
pub fn run_row(
    a: &Args,
    gpu_ok: bool,
    case: &Case,
    row: &mut Row,
    what: &str,
    dump: Option<&Path>,
) -> (Option<ChildRun>, Option<ChildRun>) {
    let cpu = a.cpu.then(|| run_child(a, case, what, false, dump));
    let gpu = (a.gpu && gpu_ok).then(|| run_child(a, case, what, true, None));
    if let Some(c) = &cpu {
        row.cpu = Time::of(c);
        eprintln!("  {} CPU: {}", row.name, row.cpu.cell());
    }
    if let Some(g) = &gpu {
        row.gpu = Time::of(g);
        eprintln!("  {} GPU: {}", row.name, row.gpu.cell());
    }
    if let (Some(c), Some(g)) = (&cpu, &gpu) {
        match (c.get("digest"), g.get("digest")) {
            (Some(x), Some(y)) if x == y => row.checks.push("✓ GPU = CPU".into()),
            (Some(_), Some(_)) => row.checks.push("✗ GPU ≠ CPU".into()),
            _ => row.checks.push("– GPU = CPU: a path failed".into()),
        }
    } else {
        row.checks.push("– GPU = CPU: n/a (one path)".into());
    }
    (cpu, gpu)
}

/// The NN gap check: the tokens below the gap are exactly the dead ones.
pub fn gap_check(run: &ChildRun, dead: Option<&Vec<usize>>) -> String {
    let Some(dead) = dead else {
        return "– gap = dead tokens: n/a (no planted structure)".into();
    };
    if run.out.is_err() {
        return "– gap = dead tokens: not run".into();
    }
    let below: Option<Vec<usize>> = run.get("gap").and_then(|g| {
        Some(
            g["tokens"]
                .as_array()?
                .iter()
                .filter_map(|x| x.as_u64().map(|x| x as usize))
                .collect(),
        )
    });
    match below {
        Some(t) if &t == dead => {
            let g = run.get("gap").cloned().unwrap_or_default();
            format!(
                "✓ gap {:.2e}–{:.2e} splits off exactly the {} dead tokens",
                g["lo"].as_f64().unwrap_or(f64::NAN),
                g["hi"].as_f64().unwrap_or(f64::NAN),
                dead.len()
            )
        }
        Some(t) => format!(
            "✗ gap holds {} tokens, not the {} dead ones",
            t.len(),
            dead.len()
        ),
        None => "✗ no gap".into(),
    }
}

/// The near check: the components hold exactly the dead tokens (`exact`),
/// or only dead tokens.
pub fn near_check(run: &ChildRun, dead: Option<&Vec<usize>>, exact: bool) -> String {
    let Some(dead) = dead else {
        return "– components = dead tokens: n/a (no planted structure)".into();
    };
    let Some(t) = run.tokens("tokens") else {
        return "– components: not run".into();
    };
    let inside = t.iter().filter(|x| dead.binary_search(x).is_ok()).count();
    if exact {
        if &t == dead {
            format!("✓ components hold exactly the {} dead tokens", dead.len())
        } else {
            format!(
                "✗ components hold {} tokens ({inside} of the {} dead)",
                t.len(),
                dead.len()
            )
        }
    } else if inside == t.len() {
        format!(
            "✓ only dead tokens joined ({inside} of {}; r below every trained token's NN)",
            dead.len()
        )
    } else {
        format!("✗ {} trained tokens joined", t.len() - inside)
    }
}

pub fn run_case(a: &Args, gpu_ok: bool, case: Case) -> CaseReport {
    eprintln!("{} …", case.title);
    let mapped = map(&case.path);
    let bytes = &mapped[case.offset as usize..case.offset as usize + case.stored()];
    let (floor, _) = common::time(a.reps, || read_pass(bytes));
    drop(mapped);
    let (lab, distinct) = labels(&case);
    let base = run_child(a, &case, "base", false, None);
    let mut r = CaseReport {
        case: case.clone(),
        distinct,
        read_pass: floor.as_secs_f64(),
        survey: None,
        base_kib: base.peak_kib,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let dump = case.path.with_extension("exact.f64");

    // Exact NN on slices.
    let mut largest: Option<(usize, Option<f64>, Option<f64>)> = None; // vectors, CPU s, GPU s
    let mut scaling: Vec<(usize, usize, f64)> = Vec::new();
    for &size in a.slices.iter().filter(|&&s| s < case.n) {
        if case.dead.as_ref().is_some_and(|d| size < 2 * d.len()) {
            continue;
        }
        let sc = slice_case(a, &case, size);
        let (sl, sk) = labels(&sc);
        let mut row = Row::new(
            format!("exact NN, {size}-row slice ({sk} vectors)"),
            Kind::Nn,
            &sc,
            false,
        );
        let (cpu, gpu) = run_row(a, gpu_ok, &sc, &mut row, "nn", Some(&dump));
        let first = cpu.as_ref().or(gpu.as_ref());
        if let Some(f) = first {
            row.checks.push(gap_check(f, sc.dead.as_ref()));
        }
        let exact = cpu
            .as_ref()
            .is_some_and(|c| c.out.is_ok())
            .then_some(dump.as_path());
        row.peer = run_peer(a, &sc, &sl, &["nn".into()], exact).pop().flatten();
        largest = Some((sk, row.cpu.secs(), row.gpu.secs()));
        if let Some(s) = row.cpu.secs() {
            scaling.push((size, sk, s));
        }
        row.cpu_run = cpu;
        r.rows.push(row);
    }
    for w in scaling.windows(2) {
        let ((r0, k0, t0), (r1, k1, t1)) = (w[0], w[1]);
        r.notes.push(format!(
            "CPU exact NN scaling: {r0} → {r1} rows took {:.2}× the time for (vectors ratio)² = {:.2}.",
            t1 / t0,
            (k1 as f64 / k0 as f64).powi(2)
        ));
    }

    // Exact NN at full size, or its extrapolation from the largest slice.
    let mut row = Row::new(
        format!("exact NN, all {} rows ({distinct} vectors)", case.n),
        Kind::Nn,
        &case,
        true,
    );
    let estimate = |s: Option<f64>, k: usize| s.map(|s| s * (distinct as f64 / k as f64).powi(2));
    let (cpu_est, gpu_est) =
        largest.map_or((None, None), |(k, c, g)| (estimate(c, k), estimate(g, k)));
    let over = |e: Option<f64>| e.is_some_and(|e| e > a.budget);
    let mut full_nn: Option<ChildRun> = if over(cpu_est) || over(gpu_est) {
        let how = format!(
            "largest slice × (vectors ratio)², over --budget {:.0} s",
            a.budget
        );
        let mut cpu = None;
        if a.cpu {
            if over(cpu_est) {
                row.cpu = Time::Extrapolated(cpu_est.unwrap_or(f64::NAN), how.clone());
            } else {
                let c = run_child(a, &case, "nn", false, Some(&dump));
                row.cpu = Time::of(&c);
                cpu = Some(c);
            }
        }
        if a.gpu && gpu_ok {
            if over(gpu_est) {
                row.gpu = Time::Extrapolated(gpu_est.unwrap_or(f64::NAN), how);
            } else {
                row.gpu = Time::of(&run_child(a, &case, "nn", true, None));
            }
        }
        row.checks.push("– GPU = CPU: n/a (extrapolated)".into());
        if let Some(c) = &cpu {
            row.checks.push(gap_check(c, case.dead.as_ref()));
        } else {
            row.checks.push("– gap: n/a (extrapolated)".into());
        }
        cpu
    } else {
        let (cpu, gpu) = run_row(a, gpu_ok, &case, &mut row, "nn", Some(&dump));
        if let Some(f) = cpu.as_ref().or(gpu.as_ref()) {
            row.checks.push(gap_check(f, case.dead.as_ref()));
        }
        cpu.or(gpu)
    };
    r.survey = full_nn.as_ref().and_then(|c| c.get("survey_s")?.as_f64());
    let exact_full = full_nn
        .as_ref()
        .is_some_and(|c| c.out.is_ok() && c.get("digest").is_some() && a.cpu)
        .then_some(dump.as_path());
    let nn_row = r.rows.len();
    // The --near-l2 threshold: the 1st percentile of all tokens' exact NN
    // distances where the full NN ran, else estimated from a sample.
    let from_full = full_nn.as_ref().and_then(|c| c.get("q01")?.as_f64());
    row.cpu_run = full_nn.take_if(|_| a.cpu);
    r.rows.push(row);
    let l2 = match from_full {
        Some(x) => {
            r.notes.push(format!(
                "`--near-l2` threshold: the 1st percentile of all tokens' exact NN distances, {x:.4e}."
            ));
            Some(x)
        }
        None => {
            let row = format!("nn-sample:{}", a.nn_sample);
            let s = run_child(a, &case, &row, !a.cpu, None);
            if r.survey.is_none() {
                r.survey = s.get("survey_s").and_then(Value::as_f64);
            }
            let x = s.get("q01").and_then(Value::as_f64);
            if let Some(x) = x {
                r.notes.push(format!(
                    "`--near-l2` threshold: the 1st percentile of the exact NN distances of {} tokens drawn uniformly (each against all rows, {}), {x:.4e}.",
                    s.get("sampled").and_then(Value::as_u64).unwrap_or(0),
                    s.time().map_or("?".into(), |t| fmt_time(secs(t)))
                ));
            }
            x
        }
    };

    // Threshold searches at full size.
    let thresholds = [
        (
            format!("`--near-ulp {}`", a.ulp),
            format!("near-ulp:{}", a.ulp),
            true,
        ),
        (
            format!("`--near-rel {:e}`", a.rel),
            format!("near-rel:{}", a.rel),
            true,
        ),
        (
            format!(
                "`--near-l2` at the 1st percentile ({})",
                l2.map_or("?".into(), |x| format!("{x:.3e}"))
            ),
            l2.map_or(String::new(), |x| format!("near-l2:{x:e}")),
            false,
        ),
    ];
    let mut rel_r: Option<f64> = None;
    for (name, what, exact) in thresholds {
        let mut row = Row::new(
            format!("{name}, all {} rows", case.n),
            Kind::Threshold,
            &case,
            true,
        );
        if what.is_empty() {
            row.cpu = Time::Failed("no threshold".into());
            r.rows.push(row);
            continue;
        }
        let (cpu, gpu) = run_row(a, gpu_ok, &case, &mut row, &what, None);
        if let Some(f) = cpu.iter().chain(&gpu).find(|c| c.out.is_ok()) {
            row.checks.push(near_check(f, case.dead.as_ref(), exact));
            let th = f.get("threshold").and_then(Value::as_f64);
            let _ = write!(
                row.name,
                " → {} pairs, {} components",
                f.get("pairs").map_or("?".into(), |v| v.to_string()),
                f.get("components").map_or("?".into(), |v| v.to_string())
            );
            if what.starts_with("near-rel") {
                rel_r = th;
                if let Some(t) = th {
                    let _ = write!(row.name, " (r = {t:.3e})");
                }
            }
        } else {
            row.checks
                .push("– components: not run (the row failed)".into());
        }
        row.cpu_run = cpu;
        r.rows.push(row);
    }

    // numpy at full size: NN, and the pair searches at the L2 thresholds.
    let mut tasks = vec!["nn".to_string()];
    if let Some(t) = rel_r {
        tasks.push(format!("pairs:{t:e}"));
    }
    if let Some(t) = l2 {
        tasks.push(format!("pairs:{t:e}"));
    }
    let peer = run_peer(a, &case, &lab, &tasks, exact_full);
    let pick = |t: &str| {
        tasks
            .iter()
            .position(|x| x == t)
            .and_then(|i| peer[i].clone())
    };
    r.rows[nn_row].peer = pick("nn");
    let n_rows = r.rows.len();
    let rel = rel_r.and_then(|t| pick(&format!("pairs:{t:e}")));
    r.rows[n_rows - 3].peer = rel.clone();
    r.rows[n_rows - 3].peer_note =
        " (numpy has no step form: its pass at the `--near-rel` threshold)".into();
    r.rows[n_rows - 2].peer = rel;
    r.rows[n_rows - 1].peer = l2.and_then(|t| pick(&format!("pairs:{t:e}")));
    r
}
