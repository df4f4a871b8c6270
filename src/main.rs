//! The `singularity-gpu` binary: parse flags, run the survey, print the report.
//! Every error is printed here, as one line: exit code 2 for bad input or
//! flags, 1 for a GPU that fails while running.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use singularity_gpu::report::json::JsonExporter;
use singularity_gpu::report::text::TextExporter;
use singularity_gpu::report::timeline as series_report;
use singularity_gpu::report::Exporter;
use singularity_gpu::{Equality, GpuOptions, GroupOptions, LoadOptions, SurveyOptions};
use singularity_gpu::{NearThreshold, PairOptions};
use singularity_gpu::{SeriesInput, SeriesOptions};

/// Writes the report to stdout; a closed pipe (`| head`) is not an error
/// worth reporting.
fn emit(out: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
}

/// `--series` / `--trajectory`.
fn run_series(cli: cli::Cli, input: SeriesInput) -> anyhow::Result<()> {
    if cli.steps.is_some() && cli.file.is_some() {
        anyhow::bail!(singularity_gpu::Error::Usage(
            "--steps goes with --series or --trajectory".into()
        ));
    }
    let opts = SeriesOptions {
        load: LoadOptions {
            key: cli.key,
            reinterpret: cli.as_dtype.map(Into::into),
            unembedding: cli.unembedding,
            revision: None,
            tokenizer: cli.tokenizer,
        },
        steps: cli.steps.unwrap_or_default(),
        device: cli.device.into(),
        gpu: GpuOptions {
            max_chunk_bytes: cli.chunk_bytes,
            ..Default::default()
        },
        progress: true,
    };
    let report = singularity_gpu::survey_series(&input, &opts)?;
    for notice in &report.notices {
        eprintln!("{notice}");
    }
    emit(&if cli.json {
        series_report::json(&report)
    } else {
        series_report::text(&report, cli.max_tokens_per_group)
    });
    Ok(())
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    if let Some(paths) = cli.series.clone() {
        return run_series(cli, SeriesInput::Files(paths));
    }
    if let Some(path) = cli.trajectory.clone() {
        return run_series(cli, SeriesInput::Trajectory(path));
    }
    if cli.steps.is_some() {
        anyhow::bail!(singularity_gpu::Error::Usage(
            "--steps goes with --series or --trajectory".into()
        ));
    }
    let Some(file) = cli.file.clone() else {
        anyhow::bail!(singularity_gpu::Error::Usage(
            "give --file, --series or --trajectory".into()
        ));
    };
    let opts = SurveyOptions {
        load: LoadOptions {
            key: cli.key,
            reinterpret: cli.as_dtype.map(Into::into),
            unembedding: cli.unembedding,
            revision: cli.revision,
            tokenizer: cli.tokenizer,
        },
        device: cli.device.into(),
        gpu: GpuOptions {
            max_chunk_bytes: cli.chunk_bytes,
            ..Default::default()
        },
        group: GroupOptions {
            equality: if cli.numeric_equality {
                Equality::Numeric
            } else {
                Equality::Bitwise
            },
            hash_bits: cli.hash_bits,
        },
        pairs: PairOptions {
            nearest: cli.nearest,
            near: match (cli.near_l2, cli.near_rel, cli.near_ulp) {
                (Some(r), _, _) => Some(NearThreshold::L2(r)),
                (_, Some(f), _) => Some(NearThreshold::Rel(f)),
                (_, _, Some(k)) => Some(NearThreshold::Ulp(k)),
                _ => None,
            },
        },
        progress: true,
    };
    let report = singularity_gpu::survey_file(&file, &opts)?;
    // Notices go to stderr, so stdout holds only the report (JSON stays parseable).
    for notice in &report.notices {
        eprintln!("{notice}");
    }
    let out = if cli.json {
        JsonExporter.render(&report)
    } else {
        TextExporter {
            max_tokens_per_group: cli.max_tokens_per_group,
        }
        .render(&report)
    };
    emit(&out);
    Ok(())
}

/// On a headless machine, Vulkan drivers probing for a Wayland display make
/// libwayland print "error: XDG_RUNTIME_DIR is invalid or not set" although
/// nothing is wrong. A compute tool never needs a display: point Wayland at a
/// socket path that does not exist, so the probe fails quietly.
fn quiet_display_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        // Called first thing in main, before any other thread exists.
        std::env::set_var("WAYLAND_DISPLAY", "/nonexistent/singularity-gpu/wayland-0");
    }
}

/// `--help` and `--version` print as clap has them; a flag that cannot be
/// used is one line on stderr (clap's message, without the usage block),
/// exit code 2, like every other bad input.
fn flag_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // The message is clap's first paragraph (before the usage block), joined.
    let text = e.render().to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = para.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    eprintln!("singularity-gpu: error: {msg} (see --help)");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    quiet_display_probe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("singularity-gpu: error: {e}");
            // Bad input and unusable flags exit 2; a device failing mid-run, 1.
            let internal = e
                .downcast_ref::<singularity_gpu::Error>()
                .is_some_and(|e| !e.is_user_error());
            ExitCode::from(if internal { 1 } else { 2 })
        }
    }
}
