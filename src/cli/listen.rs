//! `--listen` and the TLS flags (README, section TLS).

use std::path::PathBuf;

use portway::config::{ClientAuth, TlsConfig};

/// Where to listen, and TLS (README, section TLS).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Listening and TLS")]
#[command(group(clap::ArgGroup::new("tls_source").args(["tls_cert", "tls_self_signed"])))]
pub(crate) struct ListenArgs {
    /// Address to listen on, HOST:PORT (repeatable or comma-separated). A host name listens
    /// on every address it resolves to (localhost: usually 127.0.0.1 and ::1). Every
    /// protocol, TLS and cleartext, on one port.
    #[arg(long, env = "PORTWAY_LISTEN", value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub(crate) listen: Vec<String>,

    /// Serve TLS with this certificate chain (PEM: the server's certificate, then its
    /// intermediates). Read again on SIGHUP.
    #[arg(long, env = "PORTWAY_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1). Read again on SIGHUP.
    #[arg(long, env = "PORTWAY_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate generated at start for localhost, 127.0.0.1 and ::1
    /// (its fingerprint is logged; browsers warn, curl needs --insecure). For local use.
    #[arg(long, env = "PORTWAY_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    tls_self_signed: bool,

    /// Ask clients for a certificate that chains to a CA in this PEM file (mutual TLS).
    #[arg(long, env = "PORTWAY_TLS_CLIENT_CA", requires = "tls_source", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,

    /// With --tls-client-ca: whether a client certificate is required or optional.
    #[arg(long, env = "PORTWAY_TLS_CLIENT_AUTH", value_enum, default_value_t = ClientAuthArg::Required,
          requires = "tls_client_ca")]
    tls_client_auth: ClientAuthArg,

    /// With TLS: also serve cleartext HTTP/1.1 and HTTP/2 on the same port (told apart by the
    /// first byte). Without it, cleartext requests are told to use https://.
    #[arg(long, env = "PORTWAY_TLS_ALLOW_CLEARTEXT", requires = "tls_source")]
    tls_allow_cleartext: bool,

    /// Close a connection whose TLS handshake takes longer than this many milliseconds.
    #[arg(long, env = "PORTWAY_TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) tls_handshake_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ClientAuthArg {
    Required,
    Optional,
}

impl ListenArgs {
    /// The TLS configuration the flags ask for, loaded (files read and checked); `None` for
    /// cleartext.
    pub(crate) fn tls(&self) -> Result<Option<portway::tls::Tls>, portway::tls::TlsError> {
        let mut config = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsConfig::files(cert, key),
            _ if self.tls_self_signed => TlsConfig::self_signed(),
            _ => return Ok(None),
        };
        config.client_ca = self.tls_client_ca.clone();
        config.client_auth = match self.tls_client_auth {
            ClientAuthArg::Required => ClientAuth::Required,
            ClientAuthArg::Optional => ClientAuth::Optional,
        };
        config.allow_cleartext = self.tls_allow_cleartext;
        portway::tls::Tls::load(&config).map(Some)
    }
}
