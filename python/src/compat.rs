//! One engine per process and device choice, created on first use and
//! shared by every call (a GPU device per survey fails after a few on
//! NVIDIA).

use std::sync::{Arc, Mutex, OnceLock};

use singularity_gpu::engine::{cpu::CpuEngine, gpu::GpuEngine};
use singularity_gpu::{DeviceChoice, Engine, Error, GpuOptions, Result};

/// An engine any thread may use.
pub type SharedEngine = Arc<dyn Engine + Send + Sync>;

type Cache = Mutex<Vec<(DeviceChoice, SharedEngine, Option<String>)>>;

/// The engine for `choice`, made once.
pub fn shared(choice: DeviceChoice) -> Result<(SharedEngine, Option<String>)> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, e, n)) = cache.iter().find(|(c, _, _)| *c == choice) {
        return Ok((e.clone(), n.clone()));
    }
    let gpu = GpuOptions::default();
    let (engine, notice): (SharedEngine, Option<String>) = match choice {
        DeviceChoice::Cpu => (Arc::new(CpuEngine::new()), None),
        DeviceChoice::Gpu => (Arc::new(GpuEngine::new(true, gpu)?), None),
        DeviceChoice::Auto => match GpuEngine::new(false, gpu) {
            Ok(e) => (Arc::new(e), None),
            Err(Error::NoAdapter(why)) => (
                Arc::new(CpuEngine::new()),
                Some(format!("notice: {why}; using the CPU path")),
            ),
            Err(e) => return Err(e),
        },
    };
    cache.push((choice, engine.clone(), notice.clone()));
    Ok((engine, notice))
}
