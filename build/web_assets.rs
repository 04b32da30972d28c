//! Build step for the demo page (`web/`), which the binary embeds so that it serves a working
//! page from any directory, on a machine without Node.
//!
//! The page loads its libraries (protobuf-es, connect-es, connect-web) as native ES modules
//! through an import map: no bundler, no generated code. This step gathers into
//! `OUT_DIR/web/` the project's own files from `web/` and, under `vendor/<package>/`, the ES
//! modules of the npm packages named in [`VENDORED`]. Their versions and SHA-512 integrity
//! hashes come from the committed `package-lock.json`, so the binary embeds exactly what
//! `npm ci` would install. Each tarball is fetched from the npm registry with `curl` (the tool
//! rustup itself is installed with), checked against its hash, cached in `OUT_DIR`, and
//! unpacked in-process.
//!
//! Settings (environment variables, read at build time):
//! - `PORTWAY_NPM_DIR`: a `node_modules` directory to copy the packages from instead of
//!   downloading them (e.g. after `npm ci` at the repository root). Versions are checked
//!   against the lock file; npm verified the hashes when it installed them.
//! - `PORTWAY_NPM_REGISTRY`: the registry to download from (default `https://registry.npmjs.org`).
//!
//! This file is included from `build.rs` and uses only its build-dependencies.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::Digest as _;

/// The npm packages the page imports at run time (see the import map in `web/index.html`).
const VENDORED: [&str; 3] = ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"];

/// Of each package, the files under this directory are embedded (ES modules only).
const ESM_DIR: &str = "dist/esm/";

/// The project's own files in `web/` that the page needs (not the npm package's metadata).
const WEB_EXTENSIONS: [&str; 7] = ["html", "js", "mjs", "css", "svg", "png", "ico"];

type BoxError = Box<dyn std::error::Error>;

/// Writes `OUT_DIR/web/`: the files of `web/` and `vendor/<package>/dist/esm/**.js`.
pub fn embed(out_dir: &Path) -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=web");
    println!("cargo:rerun-if-changed=package-lock.json");
    println!("cargo:rerun-if-env-changed=PORTWAY_NPM_DIR");
    println!("cargo:rerun-if-env-changed=PORTWAY_NPM_REGISTRY");
    let site = out_dir.join("web");
    if site.exists() {
        std::fs::remove_dir_all(&site)?;
    }
    copy_web(Path::new("web"), &site)?;

    let lock: serde_json::Value = serde_json::from_str(&std::fs::read_to_string("package-lock.json")?)
        .map_err(|e| format!("package-lock.json is not valid JSON: {e}"))?;
    for name in VENDORED {
        let entry = &lock["packages"][format!("node_modules/{name}")];
        let (Some(version), Some(integrity)) = (entry["version"].as_str(), entry["integrity"].as_str()) else {
            return Err(format!("package-lock.json has no version and integrity for {name}: run `npm install`").into());
        };
        let dest = site.join("vendor").join(name);
        match std::env::var_os("PORTWAY_NPM_DIR") {
            Some(dir) => copy_installed(&PathBuf::from(dir).join(name), name, version, &dest)?,
            None => {
                let tarball = fetch(out_dir, name, version, integrity)?;
                unpack(&tarball, &dest).map_err(|e| format!("unpacking {name}@{version}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Copies the page's own files, keeping the directory layout.
fn copy_web(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            if name != "node_modules" {
                copy_web(&path, &to.join(name))?;
            }
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| WEB_EXTENSIONS.contains(&e)) {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}

/// The package's tarball, from the cache in `OUT_DIR` or the registry, checked against the
/// lock file's SHA-512.
fn fetch(out_dir: &Path, name: &str, version: &str, integrity: &str) -> Result<Vec<u8>, BoxError> {
    let expected = integrity
        .strip_prefix("sha512-")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .ok_or_else(|| format!("package-lock.json: {name} has no sha512 integrity (found {integrity:?})"))?;
    let cache = out_dir.join("npm-cache").join(format!("{}-{version}.tgz", name.replace('/', "__")));
    if let Ok(bytes) = std::fs::read(&cache)
        && sha2::Sha512::digest(&bytes).as_slice() == expected.as_slice()
    {
        return Ok(bytes);
    }
    let registry = std::env::var("PORTWAY_NPM_REGISTRY").unwrap_or_else(|_| "https://registry.npmjs.org".into());
    let basename = name.rsplit('/').next().unwrap_or(name);
    let url = format!("{}/{name}/-/{basename}-{version}.tgz", registry.trim_end_matches('/'));
    std::fs::create_dir_all(cache.parent().unwrap_or(out_dir))?;
    let output = Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location", "--retry", "2", "--max-time", "120", "-o"])
        .arg(&cache)
        .arg(&url)
        .output()
        .map_err(|e| offline(name, version, &url, &format!("could not run curl: {e}")))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(offline(name, version, &url, &why).into());
    }
    let bytes = std::fs::read(&cache)?;
    if sha2::Sha512::digest(&bytes).as_slice() != expected.as_slice() {
        let _ = std::fs::remove_file(&cache);
        return Err(format!(
            "{url} does not match the SHA-512 in package-lock.json; refusing to embed it. \
             If the lock file was changed on purpose, run `npm install` to refresh it."
        )
        .into());
    }
    Ok(bytes)
}

fn offline(name: &str, version: &str, url: &str, why: &str) -> String {
    format!(
        "the demo page embeds {name}@{version} from npm, and downloading {url} failed: {why}.\n\
         Build with network access, or install the packages with `npm ci` at the repository root \
         and build with PORTWAY_NPM_DIR=$PWD/node_modules."
    )
}

/// Unpacks the ES modules of an npm tarball (`package/dist/esm/**.js`) into `dest`.
fn unpack(tarball: &[u8], dest: &Path) -> Result<(), BoxError> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // npm tarballs hold one top directory (usually `package/`).
        let rel: PathBuf = path.components().skip(1).collect();
        let rel = rel.as_path();
        if !is_module(rel) || !entry.header().entry_type().is_file() {
            continue;
        }
        // The lock file's hash vouches for the content, but not for what a path may contain.
        if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(format!("unsafe path in tarball: {}", rel.display()).into());
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        write(&dest.join(rel), &bytes)?;
    }
    Ok(())
}

/// Copies an installed package's ES modules, after checking its version against the lock.
fn copy_installed(dir: &Path, name: &str, version: &str, dest: &Path) -> Result<(), BoxError> {
    let manifest = std::fs::read_to_string(dir.join("package.json"))
        .map_err(|e| format!("PORTWAY_NPM_DIR: cannot read {}: {e}", dir.join("package.json").display()))?;
    let found: serde_json::Value = serde_json::from_str(&manifest)?;
    if found["version"].as_str() != Some(version) {
        return Err(format!(
            "PORTWAY_NPM_DIR: {name} is version {}, package-lock.json pins {version}; run `npm ci`",
            found["version"]
        )
        .into());
    }
    println!("cargo:rerun-if-changed={}", dir.join("package.json").display());
    let mut stack = vec![dir.join(ESM_DIR)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir)
                && is_module(rel)
            {
                write(&dest.join(rel), &std::fs::read(&path)?)?;
            }
        }
    }
    Ok(())
}

fn is_module(rel: &Path) -> bool {
    rel.starts_with(ESM_DIR) && rel.extension().is_some_and(|e| e == "js")
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}
