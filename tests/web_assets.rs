//! The demo page embedded in the binary (`src/web_assets.rs`, gathered by
//! `build/web_assets.rs`): served from any working directory, with its libraries and the
//! descriptor set; `web_root` replaces the page's own files but not the libraries.

mod common;

use ::http::StatusCode;
use common::http::{self, Http, Reply, full};
use portway::Config;
use prost::Message as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};

async fn send(method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    http::send(Http::H1, req.body(full(Vec::new())).expect("request")).await
}

fn demo() -> Config {
    let mut config = Config::default();
    config.demo = true;
    config
}

#[tokio::test]
async fn the_page_its_libraries_and_the_schema() {
    let server = common::start_interop(demo()).await;
    let page = send("GET", &format!("{}/", server.url()), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"));
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains(r#"<script type="importmap">"#), "{html}");

    // Every module the import map names is served, as JavaScript.
    for path in html.split('"').filter(|s| s.starts_with("/vendor/") || s.ends_with(".js") && s.starts_with('/')) {
        let reply = send("GET", &format!("{}{path}", server.url()), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.header("content-type").unwrap_or_default().starts_with("text/javascript"), "{path}");
    }

    let schema = send("GET", &format!("{}/portway.binpb", server.url()), &[]).await;
    assert_eq!(schema.status, StatusCode::OK);
    let fds = pbjson_types::FileDescriptorSet::decode(schema.body.clone()).expect("a FileDescriptorSet");
    assert!(fds.file.iter().any(|f| f.package() == "portway.state.v1"));
    assert!(fds.file.iter().any(|f| f.name() == "google/protobuf/struct.proto"), "dependencies are included");
}

#[tokio::test]
async fn caching_head_and_methods() {
    let server = common::start_interop(demo()).await;
    let url = format!("{}/portway.js", server.url());
    let first = send("GET", &url, &[]).await;
    let etag = first.header("etag").expect("an etag").to_string();
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let again = send("GET", &url, &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    let head = send("HEAD", &url, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some(first.body.len().to_string().as_str()));
    assert!(head.body.is_empty());
    let delete = send("DELETE", &url, &[]).await;
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(delete.header("allow"), Some("GET, HEAD"));
    for missing in ["/nope.js", "/vendor/nope/index.js", "/../Cargo.toml", "/package.json", "/README.md"] {
        assert_eq!(
            send("GET", &format!("{}{missing}", server.url()), &[]).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

#[tokio::test]
async fn a_web_root_replaces_the_page_but_not_its_libraries() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("index.html"), "my page").unwrap();
    let mut config = demo();
    config.web_root = Some(dir.path().to_path_buf());
    let server = common::start_interop(config).await;
    assert_eq!(&send("GET", &format!("{}/", server.url()), &[]).await.body[..], b"my page");
    assert_eq!(send("GET", &format!("{}/demo/main.js", server.url()), &[]).await.status, StatusCode::NOT_FOUND);
    let lib = send("GET", &format!("{}/vendor/@connectrpc/connect/dist/esm/index.js", server.url()), &[]).await;
    assert_eq!(lib.status, StatusCode::OK);
    assert_eq!(send("GET", &format!("{}/portway.binpb", server.url()), &[]).await.status, StatusCode::OK);
}

/// The installed binary: started in an empty directory, far from the source tree, it serves
/// the demo.
#[tokio::test]
async fn the_binary_serves_the_demo_from_any_directory() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portway"))
        .args(["--storage", "memory", "--listen", "127.0.0.1:0"])
        .current_dir(cwd.path())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start portway");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = common::http::guard(async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            if let Some(rest) = line.split("portway listening address=").nth(1) {
                return rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
        panic!("portway exited before listening");
    })
    .await;
    let page = send("GET", &format!("http://{addr}/"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.body).contains("portway"));
    let main = send("GET", &format!("http://{addr}/demo/main.js"), &[]).await;
    assert_eq!(main.status, StatusCode::OK);
    child.kill().await.expect("stop portway");
}
