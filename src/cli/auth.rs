//! The `portway` binary's authentication and rate-limit flags (docs/auth.md), and the layers
//! they configure.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use portway::auth::{AuthLayer, AuthOptions, KeySet};
use portway::rate::{Rate, RateLayer, RateOptions};

/// API keys, signed calls and rate limits (docs/auth.md).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Authentication and rate limits")]
pub(crate) struct AuthArgs {
    /// API key file (TOML: ids, keys or their SHA-256, the methods and plain routes each may
    /// reach, those that need no key, per-key limits; see docs/auth.md). Unset (and no
    /// PORTWAY_API_KEYS_TOML): no authentication.
    #[arg(long = "api-keys", env = "PORTWAY_API_KEYS", value_name = "FILE")]
    api_keys: Option<PathBuf>,

    /// The key file's content itself (for secrets passed in the environment; prefer the
    /// variable to the flag, which other users can see in the process list).
    #[arg(
        long = "api-keys-toml",
        env = "PORTWAY_API_KEYS_TOML",
        value_name = "TOML",
        hide_env_values = true,
        conflicts_with = "api_keys"
    )]
    api_keys_toml: Option<String>,

    /// Signed calls: how far their timestamp may be from this clock, in seconds.
    #[arg(long, env = "PORTWAY_SIGNATURE_SKEW_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    signature_skew_secs: u64,

    /// Signatures remembered to refuse replays; when full, signed calls are refused.
    #[arg(long, env = "PORTWAY_SIGNATURE_REPLAY_CACHE", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    signature_replay_cache: u64,

    /// Calls per second from one client address (IPv4 address or IPv6 /64). Unset: no limit.
    #[arg(long, env = "PORTWAY_RATE_PER_ADDRESS", value_name = "N")]
    rate_per_address: Option<NonZeroU32>,

    /// Calls one client address may make at once after a quiet spell. Unset: the rate.
    #[arg(long, env = "PORTWAY_RATE_PER_ADDRESS_BURST", value_name = "N", requires = "rate_per_address")]
    rate_per_address_burst: Option<NonZeroU32>,

    /// Calls per second with one API key (a key's `rate_per_second` overrides). Unset: no limit.
    #[arg(long, env = "PORTWAY_RATE_PER_KEY", value_name = "N")]
    rate_per_key: Option<NonZeroU32>,

    /// Calls one API key may make at once after a quiet spell. Unset: the rate.
    #[arg(long, env = "PORTWAY_RATE_PER_KEY_BURST", value_name = "N", requires = "rate_per_key")]
    rate_per_key_burst: Option<NonZeroU32>,

    /// Calls open at once with one API key (a key's `max_concurrent` overrides). Unset: no limit.
    #[arg(long, env = "PORTWAY_MAX_CONCURRENT_PER_KEY", value_name = "N")]
    max_concurrent_per_key: Option<NonZeroU32>,
}

/// The layers to put on the stack; `None` when nothing is configured (the stack then has no
/// layer at all, and no buffer).
pub(crate) struct EdgeLayers {
    pub auth: Option<AuthLayer>,
    pub rate: RateLayer,
}

impl AuthArgs {
    /// Reads the key file and builds the layers; the error is a sentence.
    pub(crate) fn layers(&self, max_message_bytes: usize) -> Result<Option<EdgeLayers>, String> {
        let keys = match (&self.api_keys, &self.api_keys_toml) {
            (Some(path), _) => Some(KeySet::from_file(path).map_err(|e| e.to_string())?),
            (None, Some(text)) => Some(KeySet::parse(text).map_err(|e| format!("PORTWAY_API_KEYS_TOML: {e}"))?),
            (None, None) => None,
        };
        let rate = |per_second: Option<NonZeroU32>, burst: Option<NonZeroU32>| {
            per_second.map(|per_second| Rate { per_second, burst: burst.unwrap_or(per_second) })
        };
        let mut rates = RateOptions::default();
        rates.per_address = rate(self.rate_per_address, self.rate_per_address_burst);
        rates.per_key = rate(self.rate_per_key, self.rate_per_key_burst);
        rates.max_concurrent_per_key = self.max_concurrent_per_key.map(NonZeroU32::get);
        if keys.is_none() && (rates.per_key.is_some() || rates.max_concurrent_per_key.is_some()) {
            return Err("--rate-per-key and --max-concurrent-per-key need API keys (--api-keys)".into());
        }
        if keys.is_none() && rates.per_address.is_none() {
            return Ok(None);
        }
        let auth = keys.map(|keys| {
            tracing::info!(keys = keys.keys().len(), "API keys loaded");
            let mut options = AuthOptions::default();
            options.clock_skew = Duration::from_secs(self.signature_skew_secs);
            options.replay_cache_entries = usize::try_from(self.signature_replay_cache).unwrap_or(usize::MAX);
            options.max_signed_body_bytes = max_message_bytes.saturating_add(5);
            AuthLayer::new(keys, options)
        });
        Ok(Some(EdgeLayers { auth, rate: RateLayer::new(rates) }))
    }
}
