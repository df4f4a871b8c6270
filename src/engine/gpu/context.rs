//! Adapter, device and limits.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// An open wgpu device with the adapter's own limits, and a sink for
/// validation and out-of-memory errors (which wgpu would otherwise panic on).
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    errors: Arc<Mutex<Option<String>>>,
}

/// Preference among adapter types: hardware first, software rasterizers last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl GpuContext {
    /// Opens the best adapter. Software adapters (Mesa's lavapipe, WARP) are
    /// taken only when `allow_software` is set.
    pub fn new(allow_software: bool) -> Result<Self> {
        pollster::block_on(Self::open(allow_software))
    }

    /// Every adapter that runs compute shaders, software ones included, best first.
    pub fn adapters() -> Vec<crate::types::DeviceInfo> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let mut found: Vec<wgpu::AdapterInfo> =
            pollster::block_on(instance.enumerate_adapters(backends))
                .into_iter()
                .filter(|a| {
                    a.get_downlevel_capabilities()
                        .flags
                        .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
                })
                .map(|a| a.get_info())
                .collect();
        found.sort_by_key(|i| rank(i.device_type));
        found
            .into_iter()
            .map(|i| crate::types::DeviceInfo {
                kind: crate::types::DeviceKind::Gpu,
                adapter: format!("{} ({:?})", i.name, i.device_type),
                backend: format!("{:?}", i.backend),
            })
            .collect()
    }

    async fn open(allow_software: bool) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            // The GL backend is compute-poor and noisy on headless machines.
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters: Vec<wgpu::Adapter> = instance
            .enumerate_adapters(backends)
            .await
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .collect();
        let found: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?}, {:?})", i.name, i.device_type, i.backend)
            })
            .collect();
        if !allow_software {
            adapters.retain(|a| a.get_info().device_type != wgpu::DeviceType::Cpu);
        }
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let Some(adapter) = adapters.into_iter().next() else {
            return Err(Error::NoAdapter(if found.is_empty() {
                "no Vulkan, Metal or DX12 adapter with compute shaders was found".into()
            } else {
                format!("only software adapters were found ({})", found.join(", "))
            }));
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("singularity-gpu"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("{}: {e}", info.name)))?;
        let errors = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        Ok(Self {
            device,
            queue,
            info,
            limits,
            errors,
        })
    }

    /// Waits for all submitted work, then reports the first error the device raised.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check()
    }

    /// [`GpuContext::wait`], giving up with [`Error::Interrupted`] within
    /// a tenth of a second of `progress` being interrupted. The work already
    /// queued still runs to its end on the device (a later call waits for
    /// it); the caller gets control back.
    pub fn wait_or_interrupt(&self, progress: &crate::progress::Progress) -> Result<()> {
        loop {
            let step = wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(std::time::Duration::from_millis(100)),
            };
            match self.device.poll(step) {
                Ok(_) => return self.check(),
                Err(wgpu::PollError::Timeout) if progress.interrupted() => {
                    return Err(Error::Interrupted)
                }
                Err(wgpu::PollError::Timeout) => continue,
                Err(e) => return Err(Error::Gpu(e.to_string())),
            }
        }
    }

    /// The first error the device raised so far, if any.
    pub fn check(&self) -> Result<()> {
        match self.errors.lock().ok().and_then(|mut e| e.take()) {
            Some(msg) => Err(Error::Gpu(msg)),
            None => Ok(()),
        }
    }

    /// Largest byte size one storage binding may have.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Copies `buffer[..len]` (a MAP_READ buffer) back to the host.
    pub fn read_back(&self, buffer: &wgpu::Buffer, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let slice = buffer.slice(..len);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}
