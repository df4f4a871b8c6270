//! Every WGSL kernel in `shaders/` must compile for every backend our users
//! run, not only for the Vulkan one CI executes (lavapipe): Macs run Metal
//! (MSL) and some Windows desktops DX12 (HLSL). Each shader, prefixed with
//! `shaders/common.wgsl` as `src/engine/gpu/mod.rs` does, is parsed and
//! validated with naga (the version wgpu itself uses) and translated to MSL
//! and HLSL. Shaders are found by listing the folder, so new ones are covered
//! without touching this file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use naga::back::{hlsl, msl, pipeline_constants};
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::Module;

use crate::common::root;

const COMMON: &str = "common.wgsl";

fn shader_dir() -> PathBuf {
    root().join("shaders")
}

/// The `.wgsl` files of `shaders/`, sorted by name.
fn shader_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ can be listed")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

/// The source the engine compiles for a shader file: the common helpers,
/// a newline, then the kernel (the common file alone is checked as it is).
fn engine_source(path: &Path) -> String {
    let source = std::fs::read_to_string(path).expect("shader readable");
    if path.file_name().is_some_and(|n| n == COMMON) {
        source
    } else {
        let common = std::fs::read_to_string(shader_dir().join(COMMON)).expect("common.wgsl");
        format!("{common}\n{source}")
    }
}

/// What wgpu grants a device that requests no optional features
/// (`src/engine/gpu/context.rs`) on a fully compliant adapter (Vulkan, Metal,
/// DX12): naga's defaults plus the downlevel flag `SHADER_F16_IN_F32`
/// (`unpack2x16float`), as `wgpu-naga-bridge`'s `features_to_naga_capabilities`
/// maps them. Nothing optional (f64, f16 arithmetic, subgroups) is in it.
fn baseline() -> Capabilities {
    Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32
}

/// Validates `module` with `caps` (the baseline, intersected with what a
/// backend can express).
fn validate(module: &Module, caps: Capabilities) -> Result<ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), caps)
        .validate(module)
        .map_err(|e| format!("{e:?}"))
}

/// Resolves `override` declarations with their defaults, as wgpu does
/// before handing a module to the Metal or DX12 backend.
fn resolved(module: &Module, info: &ModuleInfo) -> Result<(Module, ModuleInfo), String> {
    let (m, i) = pipeline_constants::process_overrides(
        module,
        info,
        None,
        &naga::back::PipelineConstants::default(),
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok((m.into_owned(), i.into_owned()))
}

/// Bounds checks as wgpu's default (checked) shader modules request them.
fn checked() -> BoundsCheckPolicies {
    BoundsCheckPolicies {
        index: BoundsCheckPolicy::Restrict,
        buffer: BoundsCheckPolicy::Restrict,
        image_load: BoundsCheckPolicy::Restrict,
        binding_array: BoundsCheckPolicy::Unchecked,
    }
}

fn to_msl(module: &Module) -> Result<String, String> {
    let caps = baseline() & msl::supported_capabilities();
    let info = validate(module, caps)?;
    let (module, info) = resolved(module, &info)?;
    let options = msl::Options {
        // MSL 2.0 (macOS 10.13) is the oldest language wgpu's Metal backend
        // runs; a kernel that needs a newer one should fail here first.
        lang_version: (2, 0),
        bounds_check_policies: checked(),
        ..Default::default()
    };
    let (out, _) = msl::write_string(&module, &info, &options, &msl::PipelineOptions::default())
        .map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

fn to_hlsl(module: &Module, shader_model: hlsl::ShaderModel) -> Result<String, String> {
    let caps = baseline() & hlsl::supported_capabilities();
    let info = validate(module, caps)?;
    let (module, info) = resolved(module, &info)?;
    let options = hlsl::Options {
        shader_model,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions::default();
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &options, &pipeline)
        .write(&module, &info, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

#[test]
fn every_shader_validates_and_translates_to_msl_and_hlsl() {
    let files = shader_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // The listing must see the kernels the engine compiles today.
    for expected in [
        COMMON,
        "row_stats.wgsl",
        "column_sums.wgsl",
        "pairwise_l2.wgsl",
        "step_diff.wgsl",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "shaders/{expected} not found (listed: {names:?})"
        );
    }
    let mut failures = String::new();
    for (path, name) in files.iter().zip(&names) {
        let source = engine_source(path);
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(
                    failures,
                    "{name}: WGSL parse: {}",
                    e.emit_to_string_with_path(&source, name)
                );
                continue;
            }
        };
        if let Err(e) = validate(&module, baseline()) {
            let _ = writeln!(failures, "{name}: validation: {e}");
            continue;
        }
        if name != COMMON && module.entry_points.is_empty() {
            let _ = writeln!(failures, "{name}: no entry point");
        }
        match to_msl(&module) {
            Ok(out) => {
                for ep in &module.entry_points {
                    if !out.contains("kernel") || !out.contains(&ep.name) {
                        let _ = writeln!(failures, "{name}: MSL lacks kernel `{}`", ep.name);
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(failures, "{name}: MSL (Metal): {e}");
            }
        }
        // 5.1 is FXC's model, the DX12 fallback; 6.0 is what DXC gives.
        for sm in [hlsl::ShaderModel::V5_1, hlsl::ShaderModel::V6_0] {
            match to_hlsl(&module, sm) {
                Ok(out) => {
                    for ep in &module.entry_points {
                        if !out.contains("[numthreads(") || !out.contains(&ep.name) {
                            let _ = writeln!(
                                failures,
                                "{name}: HLSL {sm:?} lacks compute entry `{}`",
                                ep.name
                            );
                        }
                    }
                }
                Err(e) => {
                    let _ = writeln!(failures, "{name}: HLSL {sm:?} (DX12): {e}");
                }
            }
        }
    }
    assert!(failures.is_empty(), "shaders that fail:\n{failures}");
}

/// The checks above must be able to fail: a kernel using f64 (which WGSL on
/// Metal cannot express) and one with a type error are both rejected.
#[test]
fn the_checks_reject_broken_kernels() {
    let bad_type = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
    assert!(naga::front::wgsl::parse_str(bad_type)
        .map_err(|e| e.to_string())
        .and_then(|m| validate(&m, baseline()))
        .is_err());
    let f64_kernel = "@group(0) @binding(0) var<storage, read_write> o: array<f64>;\n\
                      @compute @workgroup_size(1) fn main() { o[0] = o[1] * 2.0lf; }";
    let module = naga::front::wgsl::parse_str(f64_kernel).expect("parses");
    assert!(validate(&module, baseline()).is_err());
    assert!(to_msl(&module).is_err(), "MSL has no f64");
}
