//! Start-up, as a person meets it: the real binary, with settings that cannot work, a busy
//! address, a data directory in use or in the way, a settings file. Each refusal is a
//! sentence (asserted word for word where it matters), never Rust debug output; what a
//! successful start logs names the absolute data directory and the URL to open.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn portway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portway"));
    c.env("NO_COLOR", "1").env("RUST_LOG", "info");
    // Settings from the environment of whoever runs the tests must not leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTWAY_") {
            c.env_remove(key);
        }
    }
    c
}

/// Runs portway with `args` (on an ephemeral port, in memory unless `args` say otherwise) and
/// expects it to refuse to start: returns what it printed.
fn refused(dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = portway();
    command.current_dir(dir);
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let out = command.args(args).stdin(Stdio::null()).output().expect("run portway");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "portway {args:?} started:\n{text}");
    assert!(!text.contains("Os {") && !text.contains("kind:"), "debug output for {args:?}:\n{text}");
    text
}

/// A running portway and the lines it has logged so far.
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        Self::start_with(dir, args, &[])
    }

    fn start_with(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = portway()
            .current_dir(dir)
            .envs(envs.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn portway");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
        std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).for_each(|l| drop(tx2.send(l))));
        let mut running = Self { child, lines, seen: Vec::new() };
        running.wait_for("portway listening");
        running
    }

    /// The first line (logged so far, or next) that contains `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("portway never logged `{needle}`; it logged:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The address it listens on, from its log.
    fn address(&self) -> String {
        let line = self.seen.iter().find(|l| l.contains("portway listening")).expect("listening line");
        line.split("address=").nth(1).and_then(|r| r.split_whitespace().next()).expect("address=").to_owned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn settings_that_cannot_work_are_refused_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--max-message-bytes", "0"], "the message limit (--max-message-bytes) is 0, so no message could pass"),
        (&["--ws-path", "ws"], "the WebSocket path (--ws-path) `ws` is not a path: it must start with `/`"),
        (&["--web-dir", "no-such-dir"], "the web root (--web-dir) no-such-dir cannot be read (it does not exist)"),
        (&["--cors-origin", "https://app.example.com/"], "`https://app.example.com/` is not an origin"),
        (&["--cors-origin", "app.example.com"], "`app.example.com` is not an origin"),
        (&["--ws-max-frame-bytes", "1024"], "the WebSocket frame limit (--ws-max-frame-bytes) 1024 is below"),
        (
            &["--ws-read-buffer-bytes", "1099511627776"],
            "the WebSocket read buffer (--ws-read-buffer-bytes) 1099511627776 is over 64 MiB",
        ),
        (
            &["--ws-write-buffer-bytes", "18446744073709551615"],
            "the WebSocket write buffer (--ws-write-buffer-bytes) 18446744073709551615 is over 64 MiB",
        ),
        (&["--max-connections", "0"], "invalid value '0' for '--max-connections"),
        (&["--max-json-depth", "200"], "invalid value '200' for '--max-json-depth"),
        (&["--shutdown-grace", "ten seconds"], "invalid value 'ten seconds' for '--shutdown-grace <DURATION>'"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--storage", "memory"];
        all.extend_from_slice(args);
        let text = refused(dir.path(), &all);
        assert!(text.contains(expected), "portway {args:?} said:\n{text}\nexpected: {expected}");
    }
}

#[test]
fn a_busy_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let text = refused(dir.path(), &["--storage", "memory", "--listen", &addr]);
    assert!(text.contains(&format!("the address {addr} is already in use")) && text.contains("--listen"), "{text}");
}

#[test]
fn data_directory_problems_name_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("a-file"), b"x").unwrap();
    let text = refused(&root, &["--data-dir", "a-file"]);
    let shown = root.join("a-file");
    assert!(text.contains(&format!("the data directory {} is a file, not a directory", shown.display())), "{text}");

    std::fs::write(root.join("blocker"), b"x").unwrap();
    let text = refused(&root, &["--data-dir", "blocker/inside"]);
    assert!(
        text.contains(&format!("cannot create the data directory {}", root.join("blocker/inside").display())),
        "{text}"
    );

    // A second portway on the same data directory is told which file is in use.
    let mut first = Running::start(&root, &["--listen", "127.0.0.1:0", "--data-dir", "data"]);
    let open = first.wait_for("state store open");
    let data = root.join("data");
    assert!(open.contains(&format!("data_dir={}", data.display())), "absolute data directory not logged: {open}");
    let text = refused(&root, &["--data-dir", "data"]);
    assert!(
        text.contains(&format!(
            "the state store file {} is already open in another process",
            data.join("state.redb").display()
        )),
        "{text}"
    );
}

#[test]
fn a_start_logs_where_to_go_and_no_directory_for_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::start(dir.path(), &["--listen", "127.0.0.1:0", "--storage", "memory"]);
    let addr = running.address();
    let listening = running.wait_for("portway listening");
    assert!(listening.contains(&format!("url=http://{addr}/")), "{listening}");
    let open = running.wait_for("state store open");
    assert!(open.contains("in memory") && !open.contains("data_dir"), "{open}");
    assert!(!dir.path().join("portway-data").exists(), "a memory store created a data directory");
}

#[test]
fn a_settings_file_sits_under_variables_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portway.toml");
    std::fs::write(&file, "storage = \"memory\"\nmax-message-bytes = 0\n[ws]\npath = \"nope\"\n").unwrap();
    let config = file.to_str().unwrap();

    // The file's values are used, and checked like flags.
    let text = refused(dir.path(), &["--config", config]);
    assert!(text.contains("(--max-message-bytes) is 0"), "{text}");

    // A flag wins over the file; the next bad value in the file is reported.
    let text = refused(dir.path(), &["--config", config, "--max-message-bytes", "1024"]);
    assert!(text.contains("(--ws-path) `nope` is not a path"), "{text}");

    // A PORTWAY_* variable wins over the file too; the rest of the file still applies.
    let mut running = Running::start_with(
        dir.path(),
        &["--config", config, "--listen", "127.0.0.1:0"],
        &[("PORTWAY_MAX_MESSAGE_BYTES", "2048"), ("PORTWAY_WS_PATH", "/socket")],
    );
    let open = running.wait_for("state store open");
    assert!(open.contains("in memory"), "the file's storage setting was not used: {open}");

    // Unknown keys and wrong types are named.
    std::fs::write(&file, "max-mesage-bytes = 10\n").unwrap();
    let text = refused(dir.path(), &["--config", config]);
    assert!(text.contains("sets `max-mesage-bytes`, which is not a setting"), "{text}");
    let text = refused(dir.path(), &["--config", "missing.toml"]);
    assert!(text.contains("cannot read the settings file missing.toml: it does not exist"), "{text}");
}
