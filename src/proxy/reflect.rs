//! A server reflection client: asks a gRPC server (over any native gRPC service, a socket or
//! in-process) which services it offers and for the descriptors of their files, with
//! reflection v1 first and v1alpha when the server has no v1 (grpcio-reflection serves
//! v1alpha only). The two versions' messages are the same on the wire, so one set of types
//! (v1's) serves both, on their two paths.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

use super::descriptors::OWN_SERVICES;

/// The reflection protocol's versions, newest first.
const VERSIONS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// What a server said about itself.
#[derive(Debug, Clone, Default)]
pub struct Reflected {
    /// The services it lists, in its order.
    pub services: Vec<String>,
    /// The encoded `FileDescriptorProto`s of those services' files and of their imports, by
    /// file name.
    pub files: BTreeMap<String, Bytes>,
    /// The reflection version that answered (`v1` or `v1alpha`).
    pub version: &'static str,
}

/// Why reflection gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReflectError {
    /// Neither version is served.
    #[error("it serves no server reflection (neither v1 nor v1alpha)")]
    NotServed,
    /// The server could not be reached, or the call failed.
    #[error("{}", describe(.0))]
    Call(tonic::Status),
    /// The server answered something reflection does not allow.
    #[error("its reflection answered badly: {0}")]
    Protocol(String),
    /// It took too long.
    #[error("its reflection did not answer within {0:?}")]
    Timeout(Duration),
}

fn describe(status: &tonic::Status) -> String {
    // A transport failure's status says "tcp connect error"; its causes say why.
    let mut message = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = if message.is_empty() { text } else { format!("{message}: {text}") };
        }
        source = s.source();
    }
    match status.code() {
        Code::Unavailable if message.is_empty() => "it is unavailable".to_string(),
        Code::Unavailable => format!("it is unavailable: {message}"),
        code => format!("its reflection failed ({}): {message}", code.description()),
    }
}

/// Asks `service` for its services and their files, giving up after `timeout`.
pub async fn reflect<S>(service: S, timeout: Duration) -> Result<Reflected, ReflectError>
where
    S: GrpcService<Body> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    S::Future: Send,
{
    let run = async {
        for (path, version) in VERSIONS.iter().zip(["v1", "v1alpha"]) {
            match Session::open(service.clone(), path).await {
                Ok(mut session) => {
                    let services = session.list().await?;
                    let files = collect(&service, path, session, &services).await?;
                    return Ok(Reflected { services, files, version });
                }
                Err(ReflectError::Call(s)) if s.code() == Code::Unimplemented => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ReflectError::NotServed)
    };
    tokio::time::timeout(timeout, run).await.map_err(|_| ReflectError::Timeout(timeout))?
}

/// One open `ServerReflectionInfo` stream: a request, then its response, in turn.
struct Session {
    requests: mpsc::Sender<ServerReflectionRequest>,
    responses: tonic::Streaming<ServerReflectionResponse>,
}

impl Session {
    async fn open<S>(service: S, path: &'static str) -> Result<Self, ReflectError>
    where
        S: GrpcService<Body> + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
        <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let mut grpc = tonic::client::Grpc::new(service);
        grpc.ready().await.map_err(|e| ReflectError::Call(tonic::Status::unavailable(error_text(e.into()))))?;
        let (requests, rx) = mpsc::channel(1);
        // The first request goes with the call, so a server that answers only once it has
        // a message (grpcio) answers the call's headers too.
        let _ = requests.send(request(MessageRequest::ListServices(String::new()))).await;
        let codec = tonic_prost::ProstCodec::<ServerReflectionRequest, ServerReflectionResponse>::default();
        let response = grpc
            .streaming(tonic::Request::new(ReceiverStream::new(rx)), PathAndQuery::from_static(path), codec)
            .await
            .map_err(ReflectError::Call)?;
        Ok(Self { requests, responses: response.into_inner() })
    }

    /// The answer to the request in flight.
    async fn answer(&mut self) -> Result<MessageResponse, ReflectError> {
        let response = self.responses.message().await.map_err(ReflectError::Call)?;
        let response = response.ok_or_else(|| ReflectError::Protocol("the stream ended early".into()))?;
        response.message_response.ok_or_else(|| ReflectError::Protocol("an empty response".into()))
    }

    async fn ask(&mut self, message: MessageRequest) -> Result<MessageResponse, ReflectError> {
        self.requests.send(request(message)).await.map_err(|_| ReflectError::Protocol("the stream closed".into()))?;
        self.answer().await
    }

    async fn list(&mut self) -> Result<Vec<String>, ReflectError> {
        match self.answer().await? {
            MessageResponse::ListServicesResponse(list) => Ok(list.service.into_iter().map(|s| s.name).collect()),
            other => Err(unexpected("the service list", &other)),
        }
    }
}

/// The files of `services` (portway's own excepted) and their imports. A server may list a
/// service it has no descriptors for (its own reflection service, say): it answers with an
/// error, in the stream (grpcio) or by ending it (tonic), and the service is left out.
async fn collect<S>(
    service: &S,
    path: &'static str,
    mut session: Session,
    services: &[String],
) -> Result<BTreeMap<String, Bytes>, ReflectError>
where
    S: GrpcService<Body> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let mut files = BTreeMap::new();
    let mut asked = BTreeSet::new();
    let mut wanted: Vec<MessageRequest> = services
        .iter()
        .filter(|s| !OWN_SERVICES.contains(&s.as_str()))
        .map(|s| MessageRequest::FileContainingSymbol(s.clone()))
        .collect();
    wanted.reverse();
    loop {
        let Some(message) = wanted.pop().or_else(|| {
            // The imports the answers did not include, by name, until none is missing.
            let missing = missing_import(&files, &asked)?;
            asked.insert(missing.clone());
            Some(MessageRequest::FileByFilename(missing))
        }) else {
            return Ok(files);
        };
        match session.ask(message).await {
            Ok(MessageResponse::FileDescriptorResponse(f)) => add_files(&mut files, f.file_descriptor_proto)?,
            Ok(MessageResponse::ErrorResponse(_)) => {}
            Ok(other) => return Err(unexpected("a file", &other)),
            Err(ReflectError::Call(s)) if s.code() == Code::NotFound => {
                session = Session::open(service.clone(), path).await?;
                session.list().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn request(message: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest { host: String::new(), message_request: Some(message) }
}

fn unexpected(wanted: &str, got: &MessageResponse) -> ReflectError {
    let got = match got {
        MessageResponse::FileDescriptorResponse(_) => "files",
        MessageResponse::AllExtensionNumbersResponse(_) => "extension numbers",
        MessageResponse::ListServicesResponse(_) => "a service list",
        MessageResponse::ErrorResponse(_) => "an error",
    };
    ReflectError::Protocol(format!("asked for {wanted}, it answered {got}"))
}

fn add_files(files: &mut BTreeMap<String, Bytes>, encoded: Vec<Vec<u8>>) -> Result<(), ReflectError> {
    use prost::Message as _;
    for raw in encoded {
        let file = prost_reflect::prost_types::FileDescriptorProto::decode(raw.as_slice())
            .map_err(|e| ReflectError::Protocol(format!("a file descriptor that does not decode: {e}")))?;
        files.entry(file.name().to_owned()).or_insert_with(|| Bytes::from(raw));
    }
    Ok(())
}

/// An import of one of `files` that is not among them and was not asked for yet.
fn missing_import(files: &BTreeMap<String, Bytes>, asked: &BTreeSet<String>) -> Option<String> {
    use prost::Message as _;
    files.values().find_map(|raw| {
        let file = prost_reflect::prost_types::FileDescriptorProto::decode(raw.as_ref()).ok()?;
        file.dependency.into_iter().find(|d| !files.contains_key(d) && !asked.contains(d))
    })
}

fn error_text(e: Box<dyn std::error::Error + Send + Sync>) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_call_says_why_with_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let status = tonic::Status::from_error(Box::new(io));
        let text = super::ReflectError::Call(status).to_string();
        assert!(text.contains("connection refused"), "{text}");
    }
}
