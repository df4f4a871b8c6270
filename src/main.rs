//! The `singularity-gpu` binary: parse flags, run the survey, print the report.
//! Every error is printed here, as one line: exit code 2 for bad input or
//! flags, 1 for a GPU that fails while running.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use cli::{Config, Mode, Output};
use singularity_gpu::report::compare::{self, Details};
use singularity_gpu::report::html::HtmlExporter;
use singularity_gpu::report::json::JsonExporter;
use singularity_gpu::report::text::TextExporter;
use singularity_gpu::report::Exporter;

/// Writes the report to stdout; a closed pipe (`| head`) is not an error
/// worth reporting.
fn emit(out: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
}

/// Renders a result as the flags ask: the report for stdout, after writing
/// the HTML page where `--html` names a file (`-`: the page is the output).
fn render<R>(result: &R, output: Output, html: Option<&Path>) -> anyhow::Result<String>
where
    TextExporter: Exporter<R>,
    JsonExporter: Exporter<R>,
    HtmlExporter: Exporter<R>,
{
    if let Some(path) = html {
        let page = HtmlExporter.render(result);
        if path == Path::new("-") {
            return Ok(page);
        }
        std::fs::write(path, page).map_err(|e| {
            singularity_gpu::Error::Usage(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(match output {
        Output::Json => JsonExporter.render(result),
        Output::Text { max_tokens } => TextExporter { max_tokens }.render(result),
    })
}

/// Several inputs: JSON Lines printed as each input is done, or one table
/// at the end, and the comparison page where `--html` asks (`-`: the page
/// is the output). A failed input's error goes to stderr as it happens and
/// the run goes on; the exit code says whether any failed (2, or 1 when the
/// device failed).
fn run_many(
    inputs: &[std::path::PathBuf],
    opts: &singularity_gpu::ManyOptions,
    details: bool,
    output: Output,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let page_only = html == Some(Path::new("-"));
    let json = matches!(output, Output::Json) && !page_only;
    // The engine opens once; its notice (the CPU fallback) comes first.
    let (engine, notice) = singularity_gpu::engine::select(opts.survey.device, opts.survey.gpu)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let comparison = singularity_gpu::survey_many_with(engine.as_ref(), inputs, opts, |entry| {
        match &entry.outcome {
            Ok(s) => {
                for notice in s.report.iter().flat_map(|r| &r.notices) {
                    eprintln!("{}: {notice}", entry.input);
                }
            }
            Err(f) => eprintln!("singularity-gpu: error: {}", f.message),
        }
        if json {
            emit(&compare::json_line(entry));
        }
    });
    if let Some(path) = html {
        let page = HtmlExporter.render(&comparison);
        if page_only {
            emit(&page);
        } else {
            std::fs::write(path, page).map_err(|e| {
                singularity_gpu::Error::Usage(format!("cannot write {}: {e}", path.display()))
            })?;
        }
    }
    if let (Output::Text { max_tokens }, false) = (output, page_only) {
        let text = TextExporter { max_tokens };
        emit(&if details {
            Details(text).render(&comparison)
        } else {
            text.render(&comparison)
        });
    }
    let failures: Vec<bool> = comparison.failures().map(|(_, f)| f.device).collect();
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else if failures.contains(&true) {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    })
}

/// Where `--html` writes, checked before the survey so that a path that
/// cannot be written fails at once rather than after hours of work, and
/// never one of the inputs (a page written over the model it surveys).
fn check_page_path(path: &Path, inputs: &[&Path]) -> Result<(), singularity_gpu::Error> {
    if path == Path::new("-") {
        return Ok(());
    }
    let cannot = |why: String| {
        singularity_gpu::Error::Usage(format!("cannot write {}: {why}", path.display()))
    };
    if let Ok(page) = std::fs::canonicalize(path) {
        if inputs
            .iter()
            .filter_map(|i| std::fs::canonicalize(i).ok())
            .any(|i| i == page)
        {
            return Err(cannot("it is one of the inputs".into()));
        }
        if page.is_dir() {
            return Err(cannot("it is a folder".into()));
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(cannot(format!("no folder {}", parent.display())));
    }
    Ok(())
}

fn run(config: Config) -> anyhow::Result<ExitCode> {
    let html = config.html.as_deref();
    if let Some(path) = html {
        let inputs: Vec<&Path> = match &config.mode {
            Mode::Survey { file, .. } => vec![file.as_path()],
            Mode::Many { inputs, .. } => inputs.iter().map(PathBuf::as_path).collect(),
            Mode::Series { input, .. } => match input {
                singularity_gpu::SeriesInput::Files(f) => f.iter().map(PathBuf::as_path).collect(),
                singularity_gpu::SeriesInput::Trajectory(f) => vec![f.as_path()],
            },
        };
        check_page_path(path, &inputs)?;
    }
    let (out, notices) = match config.mode {
        Mode::Survey { file, opts } => {
            let report = singularity_gpu::survey_file(&file, &opts)?;
            (render(&report, config.output, html)?, report.notices)
        }
        Mode::Series { input, opts } => {
            let report = singularity_gpu::survey_series(&input, &opts)?;
            (render(&report, config.output, html)?, report.notices)
        }
        Mode::Many {
            inputs,
            opts,
            details,
        } => return run_many(&inputs, &opts, details, config.output, html),
    };
    // Notices go to stderr, so stdout holds only the report (JSON stays parseable).
    for notice in &notices {
        eprintln!("{notice}");
    }
    emit(&out);
    Ok(ExitCode::SUCCESS)
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
    singularity_gpu::run::large_buffers_back_to_the_system();
    quiet_display_probe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    match cli.into_config().map_err(anyhow::Error::from).and_then(run) {
        Ok(code) => code,
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
