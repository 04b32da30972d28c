//! The method table: every RPC the gateway can transcode, assembled at start-up.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::codec::MessageCodec;

/// The four gRPC call shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStreaming,
    /// A stream of requests, one response.
    ClientStreaming,
    /// Streams both ways.
    BidiStreaming,
}

impl RpcKind {
    /// Whether the client may send more than one message.
    pub fn client_streams(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::BidiStreaming)
    }

    /// Whether the server may send more than one message.
    pub fn server_streams(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::BidiStreaming)
    }

    /// The lower-case name used in docs and the WebSocket protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ServerStreaming => "server_streaming",
            Self::ClientStreaming => "client_streaming",
            Self::BidiStreaming => "bidi_streaming",
        }
    }
}

/// The `idempotency_level` method option. Connect lets clients call methods marked
/// `NO_SIDE_EFFECTS` with HTTP GET, so responses can be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// No option given.
    Unknown,
    /// `NO_SIDE_EFFECTS`: safe to call with GET.
    NoSideEffects,
    /// `IDEMPOTENT`: safe to retry, but has side effects.
    Idempotent,
}

/// One RPC: where it lives, its shape, and how to transcode its messages.
#[derive(Clone)]
pub struct MethodDescriptor {
    service: Arc<str>,
    method: Arc<str>,
    path: Arc<str>,
    kind: RpcKind,
    idempotency: Idempotency,
    request: Arc<dyn MessageCodec>,
    response: Arc<dyn MessageCodec>,
}

impl MethodDescriptor {
    /// Describes `service`/`method` (`service` fully qualified, e.g. `grpc.testing.TestService`).
    pub fn new(
        service: &str,
        method: &str,
        kind: RpcKind,
        idempotency: Idempotency,
        request: Arc<dyn MessageCodec>,
        response: Arc<dyn MessageCodec>,
    ) -> Self {
        Self {
            path: format!("/{service}/{method}").into(),
            service: service.into(),
            method: method.into(),
            kind,
            idempotency,
            request,
            response,
        }
    }

    /// The fully-qualified service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method's simple name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The HTTP path, `/{service}/{method}`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The call shape.
    pub fn kind(&self) -> RpcKind {
        self.kind
    }

    /// The declared idempotency level.
    pub fn idempotency(&self) -> Idempotency {
        self.idempotency
    }

    /// The codec of the request message type.
    pub fn request(&self) -> &dyn MessageCodec {
        &*self.request
    }

    /// The codec of the response message type.
    pub fn response(&self) -> &dyn MessageCodec {
        &*self.response
    }
}

impl fmt::Debug for MethodDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodDescriptor")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("idempotency", &self.idempotency)
            .field("request", &self.request.type_name())
            .field("response", &self.response.type_name())
            .finish()
    }
}

/// Every method the JSON protocols can reach, by path. Built at start-up: the generated
/// entries first, then any the embedding program adds (a proxy's, say).
#[derive(Clone, Default)]
pub struct MethodTable {
    by_path: HashMap<Arc<str>, Arc<MethodDescriptor>>,
}

impl MethodTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table generated from this crate's `proto/` directory.
    pub fn generated() -> Self {
        let mut table = Self::new();
        table.extend(generated_methods());
        table
    }

    /// Has every method refuse request JSON nested deeper than `max_depth` levels
    /// ([`DepthLimited`](super::codec::DepthLimited)), whatever its codec. The gateway calls
    /// this with [`Config::max_json_depth`](crate::Config::max_json_depth).
    pub fn limit_json_depth(&mut self, max_depth: usize) {
        for method in self.by_path.values_mut() {
            let mut limited = MethodDescriptor::clone(method);
            limited.request = Arc::new(super::codec::DepthLimited::new(limited.request, max_depth));
            *method = Arc::new(limited);
        }
    }

    /// Adds (or replaces) one method.
    pub fn insert(&mut self, method: MethodDescriptor) {
        self.by_path.insert(method.path.clone(), Arc::new(method));
    }

    /// Looks a method up by its HTTP path (`/pkg.Service/Method`).
    pub fn get(&self, path: &str) -> Option<&Arc<MethodDescriptor>> {
        self.by_path.get(path)
    }

    /// Whether the table knows any method of `service`.
    pub fn has_service(&self, service: &str) -> bool {
        self.by_path.values().any(|m| m.service() == service)
    }

    /// All methods, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<MethodDescriptor>> {
        self.by_path.values()
    }

    /// The number of methods.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// A method table that can be replaced while the gateway runs (proxy mode, when a refresh
/// finds new methods): each call reads the table that is current when it starts. Cheap to
/// clone; every clone sees the same table.
#[derive(Clone, Default)]
pub struct SharedMethods {
    table: Arc<std::sync::RwLock<Arc<MethodTable>>>,
    /// The JSON depth limit every table stored gets ([`MethodTable::limit_json_depth`]);
    /// `0` until the gateway sets it.
    max_json_depth: Arc<std::sync::atomic::AtomicUsize>,
}

impl SharedMethods {
    /// Starts with `table`.
    pub fn new(table: MethodTable) -> Self {
        Self { table: Arc::new(std::sync::RwLock::new(Arc::new(table))), max_json_depth: Arc::default() }
    }

    /// The current table.
    pub fn load(&self) -> Arc<MethodTable> {
        self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the table for the calls that start from now on.
    pub fn store(&self, table: Arc<MethodTable>) {
        let max_depth = self.max_json_depth.load(std::sync::atomic::Ordering::Acquire);
        let table = if max_depth == 0 {
            table
        } else {
            let mut limited = MethodTable::clone(&table);
            limited.limit_json_depth(max_depth);
            Arc::new(limited)
        };
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    /// Has the current table, and every table stored from now on (a refresh's), refuse
    /// request JSON nested deeper than `max_depth` levels.
    pub fn limit_json_depth(&self, max_depth: usize) {
        let mut guard = self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.max_json_depth.store(max_depth, std::sync::atomic::Ordering::Release);
        let mut limited = MethodTable::clone(&guard);
        limited.limit_json_depth(max_depth);
        *guard = Arc::new(limited);
    }
}

impl fmt::Debug for SharedMethods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.load().fmt(f)
    }
}

impl Extend<MethodDescriptor> for MethodTable {
    fn extend<I: IntoIterator<Item = MethodDescriptor>>(&mut self, iter: I) {
        for m in iter {
            self.insert(m);
        }
    }
}

impl fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut paths: Vec<_> = self.by_path.keys().collect();
        paths.sort();
        f.debug_struct("MethodTable").field("methods", &paths).finish()
    }
}

// `generated_methods()`: one entry per RPC in `proto/`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/method_table.rs"));
