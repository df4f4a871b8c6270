//! A small Chrome DevTools Protocol client over `--remote-debugging-pipe`:
//! the browser reads commands on its fd 3 and writes replies and events on
//! its fd 4, each message one JSON object ended by a NUL byte. No WebSocket,
//! no port, nothing a second process on the machine could connect to.
//!
//! One thread reads the browser's pipe and hands each message over a channel;
//! [`Browser::call`] sends a command and waits (with a deadline) for the reply
//! of the same id, keeping every event that arrives meanwhile in
//! [`Browser::events`] for the checks to read afterwards.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// How long any one wait on the browser may last before the check fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The window the page is laid out in (CSS pixels).
pub const WINDOW: (u32, u32) = (1280, 900);

/// A running headless browser, killed (and its profile folder removed) on drop.
pub struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Result<Value, String>>,
    next_id: u64,
    /// Every event received so far, in order: `{"method", "params", "sessionId"}`.
    pub events: Vec<Value>,
    /// Its profile folder (removed on drop), which also holds its stderr.
    profile: TempDir,
}

/// Two pipes' ends for the child, moved to fds 3 and 4 between fork and exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Move both ends above 10, so that neither can be fd 3 or 4 when the
    // child dup2s onto those (a dup2 onto its own other end would lose it).
    let high = |fd: i32| -> std::io::Result<OwnedFd> {
        // SAFETY: `fd` is an open descriptor this function owns.
        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        let err = std::io::Error::last_os_error();
        // SAFETY: `fd` was returned by pipe2 above and is closed once, here.
        unsafe { libc::close(fd) };
        if new < 0 {
            return Err(err);
        }
        // SAFETY: `new` is a fresh descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(new) })
    };
    Ok((high(fds[0])?, high(fds[1])?))
}

impl Browser {
    /// Starts `exe` headless with a fresh profile, connected over the pipe.
    pub fn launch(exe: &Path) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| format!("profile folder: {e}"))?;
        let log = File::create(profile.path().join("stderr.log"))
            .map_err(|e| format!("browser log: {e}"))?;
        let (cmd_read, cmd_write) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (out_read, out_write) = pipe().map_err(|e| format!("pipe: {e}"))?;
        let (child_in, child_out) = (cmd_read.as_raw_fd(), out_write.as_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-dev-shm-usage", // containers often have a /dev/shm of 64 MiB
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        // SAFETY: between fork and exec only async-signal-safe calls (dup2);
        // dup2 clears close-on-exec on 3 and 4, the originals close at exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_in, 3) < 0 || libc::dup2(child_out, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        drop((cmd_read, out_write)); // the child's ends: EOF once the browser exits

        let (tx, rx) = mpsc::channel();
        let reader = BufReader::new(File::from(out_read));
        std::thread::spawn(move || {
            for message in reader.split(0) {
                let parsed = match message {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .map_err(|e| format!("unreadable message from the browser: {e}")),
                    Err(e) => Err(format!("reading the browser's pipe: {e}")),
                };
                let stop = parsed.is_err();
                if tx.send(parsed).is_err() || stop {
                    return;
                }
            }
            let _ = tx.send(Err("the browser closed its pipe (it exited)".into()));
        });
        Ok(Browser {
            child,
            to_browser: File::from(cmd_write),
            from_browser: rx,
            next_id: 0,
            events: Vec::new(),
            profile,
        })
    }

    /// Sends `method` (to the page `session`, or to the browser when `None`)
    /// and returns its `result`, or the protocol's error, or a timeout.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).map_err(|e| e.to_string())?;
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .map_err(|e| format!("{method}: writing to the browser: {e}"))?;
        let reply = self.wait_for(&format!("the reply to {method}"), |m| m["id"] == id)?;
        match reply.get("error") {
            Some(err) => Err(format!("{method}: {err}")),
            None => Ok(reply["result"].clone()),
        }
    }

    /// Waits until the event `method` arrives (or has arrived since the
    /// event log was last cleared), up to [`TIMEOUT`].
    pub fn wait_event(&mut self, method: &str) -> Result<Value, String> {
        if let Some(e) = self.events.iter().find(|e| e["method"] == method) {
            return Ok(e.clone());
        }
        let event = self.wait_for(method, |m| m["method"] == method)?;
        self.events.push(event.clone());
        Ok(event)
    }

    /// Reads messages until `wanted` holds for one (returned, not logged);
    /// the events before it go to the log.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Result<Value, String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match self.from_browser.recv_timeout(left) {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(format!("{e}{}", self.stderr_tail())),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no {what} from the browser within {TIMEOUT:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the browser went away while waiting for {what}{}",
                        self.stderr_tail()
                    ))
                }
            };
            if wanted(&message) {
                return Ok(message);
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }
}

impl Browser {
    /// The last lines the browser wrote to stderr, to say why it went away.
    fn stderr_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.profile.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        match lines.len() {
            0 => String::new(),
            n => format!(
                "; its stderr ends: {}",
                lines[n.saturating_sub(5)..].join(" | ")
            ),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(format!("not base64: byte {c:#04x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
