//! A raw HTTP/1.1 client on a tokio `TcpStream`: it writes exactly the bytes a test gives it
//! and reads responses by hand, so a test sees what is on the wire (a `connection: close`, the
//! end of the connection, a reset) that a library client would hide or paper over.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::http::guard;

/// One response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the server said this is the connection's last response.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Reads responses from the read half of a connection, buffering what it read ahead.
pub struct Reader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Reader {
    pub fn new(read: OwnedReadHalf) -> Self {
        Self { read, buf: Vec::new() }
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = self.read.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one whole response (content-length or chunked body; a response to HEAD or
    /// without either is taken as empty).
    pub async fn response(&mut self) -> std::io::Result<RawResponse> {
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not a status line: {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let mut resp = RawResponse { status, headers, body: Vec::new() };
        if let Some(len) = resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            resp.body = self.exact(len).await?;
        } else if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let size = usize::from_str_radix(self.line().await?.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(std::io::Error::other)?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break;
                }
                resp.body.extend(self.exact(size).await?);
                self.line().await?;
            }
        }
        Ok(resp)
    }

    /// Whether the server closes the connection (EOF or reset) within the guard time,
    /// with nothing more sent.
    pub async fn closed(&mut self) -> bool {
        let ended = tokio::time::timeout(super::http::GUARD, async {
            loop {
                match self.fill().await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return self.buf.is_empty(),
                }
            }
        })
        .await;
        ended.unwrap_or(false)
    }
}

/// Opens a connection and splits it.
pub async fn connect(addr: SocketAddr) -> (Reader, OwnedWriteHalf) {
    let tcp = guard(TcpStream::connect(addr)).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let (read, write) = tcp.into_split();
    (Reader::new(read), write)
}

/// Writes `len` filler bytes as request body, in `chunk`-sized pieces with `pause` between
/// them, as a slow client would; with `chunked`, each piece is one chunk of the chunked
/// transfer coding and `last` adds the terminating chunk. `Err` carries the bytes written
/// before a write failed.
pub async fn write_slowly(
    write: &mut OwnedWriteHalf,
    len: usize,
    chunk: usize,
    pause: Duration,
    chunked: bool,
    last: bool,
) -> Result<usize, usize> {
    let piece = vec![b'x'; chunk];
    let mut sent = 0;
    while sent < len {
        let n = chunk.min(len - sent);
        let mut bytes = Vec::with_capacity(n + 16);
        if chunked {
            bytes.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        }
        bytes.extend_from_slice(&piece[..n]);
        if chunked {
            bytes.extend_from_slice(b"\r\n");
        }
        if write.write_all(&bytes).await.is_err() {
            return Err(sent);
        }
        sent += n;
        tokio::time::sleep(pause).await;
    }
    if chunked && last && write.write_all(b"0\r\n\r\n").await.is_err() {
        return Err(sent);
    }
    Ok(sent)
}
