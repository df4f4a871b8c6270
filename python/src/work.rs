//! Running the engine for Python: the GIL released while it works, Ctrl-C
//! seen within [`POLL`], and no panic crossing into Python.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::to_py;
use singularity_gpu::{DeviceChoice, Interrupt, SharedEngine};

/// How often the waiting thread looks for a signal (Ctrl-C) while the work runs.
const POLL: Duration = Duration::from_millis(100);

/// Stack of the thread the work runs on: as much as the command line's main
/// thread has, where the loaders run there.
const STACK: usize = 8 << 20;

/// The shared engine for `choice` (opening a GPU device takes a while: the
/// GIL is released meanwhile).
pub fn engine(py: Python<'_>, choice: DeviceChoice) -> PyResult<(SharedEngine, Option<String>)> {
    run(py, |_| singularity_gpu::engine::shared(choice))
}

/// The message a panic carried.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs `work` on a thread of its own with the GIL released; the calling
/// thread waits, and every [`POLL`] takes the GIL for a moment to run
/// Python's signal handlers. When one raises (KeyboardInterrupt), the
/// work's [`Interrupt`] is set, the work is waited for (it stops soon after),
/// and the handler's exception is raised. A panic in the work becomes a
/// `RuntimeError`.
pub fn run<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(Interrupt) -> singularity_gpu::Result<T> + Send,
{
    let interrupt = Interrupt::new();
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let flag = interrupt.clone();
            let spawned = std::thread::Builder::new()
                .name("singularity-gpu".into())
                .stack_size(STACK)
                .spawn_scoped(s, move || {
                    let out = panic::catch_unwind(AssertUnwindSafe(|| work(flag)));
                    let _ = tx.send(out);
                });
            if let Err(e) = spawned {
                return Err(PyRuntimeError::new_err(format!(
                    "could not start a thread for the survey: {e}"
                )));
            }
            let mut signal: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(out) => {
                        if let Some(e) = signal {
                            return Err(e);
                        }
                        return match out {
                            Ok(result) => result.map_err(to_py),
                            Err(p) => Err(PyRuntimeError::new_err(format!(
                                "internal error in singularity-gpu (please report it): {}",
                                panic_message(p.as_ref())
                            ))),
                        };
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if signal.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                interrupt.set();
                                signal = Some(e);
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(signal.unwrap_or_else(|| {
                            PyRuntimeError::new_err("the survey thread ended without a result")
                        }))
                    }
                }
            }
        })
    })
}

/// Test hooks: `panic=True` panics on the work thread; else the work
/// waits `seconds` (or until interrupted) and returns how long it waited.
#[pyfunction]
#[pyo3(signature = (seconds=0.0, panic=false))]
pub fn _test_panic(py: Python<'_>, seconds: f64, panic: bool) -> PyResult<f64> {
    run(py, move |interrupt| {
        if panic {
            panic!("a test panic");
        }
        let start = std::time::Instant::now();
        while start.elapsed().as_secs_f64() < seconds && !interrupt.is_set() {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(start.elapsed().as_secs_f64())
    })
}
