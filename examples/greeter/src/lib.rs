//! `hello.v1.Greeter`: a small tonic service from its own protos, the kind of service users
//! embed in portway. The tests and the README mount it with `Gateway::builder(routes)` and
//! its [`FILE_DESCRIPTOR_SET`].

use std::pin::Pin;

use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

/// Generated from `proto/hello/v1/hello.proto`.
pub mod hello {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("hello.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, as an embedder builds it for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello_descriptor.bin"));

pub use hello::greeter_server::GreeterServer;
use hello::{HelloReply, HelloRequest};

/// Greets.
#[derive(Debug, Default, Clone)]
pub struct Greeter;

fn greeting(name: &str, count: i64) -> HelloReply {
    HelloReply { message: format!("Hello, {name}!"), count }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl hello::greeter_server::Greeter for Greeter {
    async fn say_hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name is empty"));
        }
        Ok(Response::new(greeting(&name, 1)))
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(&self, request: Request<HelloRequest>) -> Result<Response<ReplyStream>, Status> {
        let HelloRequest { name, times } = request.into_inner();
        let replies = (1..=i64::from(times.min(1000))).map(move |n| Ok(greeting(&name, n)));
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    async fn count_names(&self, request: Request<Streaming<HelloRequest>>) -> Result<Response<HelloReply>, Status> {
        let mut names = Vec::new();
        let mut stream = request.into_inner();
        while let Some(r) = stream.next().await {
            names.push(r?.name);
        }
        Ok(Response::new(HelloReply { message: names.join(", "), count: names.len() as i64 }))
    }

    type ChatStream = ReplyStream;

    async fn chat(&self, request: Request<Streaming<HelloRequest>>) -> Result<Response<ReplyStream>, Status> {
        let mut n = 0;
        let replies = request.into_inner().map(move |r| {
            n += 1;
            r.map(|r| greeting(&r.name, n))
        });
        Ok(Response::new(Box::pin(replies)))
    }
}
