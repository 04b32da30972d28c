//! Run with: `cargo run --example state_grpc -- http://127.0.0.1:8080` (a gateway from
//! `cargo run --release -- --interop` in another shell).
//!
//! A native gRPC client (tonic, HTTP/2) of the state store using all four RPC kinds: unary
//! (`Put`, `Get`, and a compare-and-set conflict read back as its typed `ConflictDetail`),
//! server streaming (`Watch`, `List`), client streaming (`PutMany`) and bidi streaming (`Sync`).

use std::error::Error;

use portway::pb::google::rpc::Status as RpcStatus;
use portway::pb::portway::state::v1::state_service_client::StateServiceClient;
use portway::pb::portway::state::v1::{
    ConflictDetail, GetRequest, ListRequest, PutRequest, SyncOpen, SyncRequest, SyncWrite, WatchRequest, sync_request,
    sync_response, sync_write,
};
use prost::Message as _;
use tokio_stream::StreamExt as _;

fn string(s: &str) -> Option<portway::protojson::Value> {
    Some(portway::protojson::Value { kind: Some(portway::protojson::value::Kind::StringValue(s.into())) })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let mut state = StateServiceClient::connect(url.clone()).await?;
    let prefix = format!("examples/grpc/{}", std::process::id());

    // Server streaming: a watch of the prefix, opened before the writes it will see.
    let mut watch =
        state.watch(WatchRequest { key: prefix.clone(), prefix: true, ..Default::default() }).await?.into_inner();
    let created = watch.next().await.ok_or("the watch ended at once")??;
    println!("watch: created at revision {}", created.revision);

    // Unary.
    let key = format!("{prefix}/doc");
    let put =
        state.put(PutRequest { key: key.clone(), value: string("hello"), ..Default::default() }).await?.into_inner();
    println!("put {key}: revision {}", put.revision);
    let got = state.get(GetRequest { key: key.clone(), revision: 0 }).await?.into_inner();
    println!("get {key}: {:?} at mod revision {}", got.entry.as_ref().and_then(|e| e.value.clone()), put.revision);

    // A compare-and-set that does not hold: FAILED_PRECONDITION with a ConflictDetail.
    let stale =
        PutRequest { key: key.clone(), value: string("stale"), expected_revision: Some(0), ..Default::default() };
    let status = state.put(stale).await.err().ok_or("the conflicting put succeeded")?;
    let detail = RpcStatus::decode(status.details())?
        .details
        .into_iter()
        .find(|any| any.type_url.ends_with("/portway.state.v1.ConflictDetail"))
        .map(|any| ConflictDetail::decode(any.value.as_ref()))
        .transpose()?
        .ok_or("no ConflictDetail in the status")?;
    println!(
        "conflict: {:?} {}: key {} is at revision {}, expected {}",
        status.code(),
        status.message(),
        detail.key,
        detail.current_revision,
        detail.expected_revision
    );

    // Client streaming: three puts applied as one revision.
    let puts: Vec<PutRequest> = (1..=3)
        .map(|i| PutRequest { key: format!("{prefix}/batch/{i}"), value: string("batch"), ..Default::default() })
        .collect();
    let many = state.put_many(tokio_stream::iter(puts)).await?.into_inner();
    println!("put_many: {} keys at revision {}", many.count, many.revision);

    // The watch saw both writes, in revision order.
    for _ in 0..2 {
        let msg = watch.next().await.ok_or("the watch ended")??;
        let keys: Vec<&str> = msg.events.iter().filter_map(|e| e.entry.as_ref()).map(|e| e.key.as_str()).collect();
        println!("watch: revision {}: {keys:?}", msg.revision);
    }

    let mut list = state.list(ListRequest { prefix: prefix.clone(), ..Default::default() }).await?.into_inner();
    let mut listed = 0;
    while let Some(page) = list.next().await {
        listed += page?.entries.len();
    }
    println!("list: {listed} keys under {prefix}");

    // Bidi streaming: a Sync session; the same write sent twice is applied once.
    let session = format!("{prefix}/session");
    let write = SyncWrite {
        sequence: 1,
        op: Some(sync_write::Op::Put(PutRequest {
            key: format!("{prefix}/sync"),
            value: string("once"),
            ..Default::default()
        })),
    };
    let requests = [
        sync_request::Request::Open(SyncOpen { session_id: session }),
        sync_request::Request::Write(write.clone()),
        sync_request::Request::Write(write),
    ]
    .map(|r| SyncRequest { request: Some(r) });
    let mut sync = state.sync(tokio_stream::iter(requests)).await?.into_inner();
    while let Some(msg) = sync.next().await {
        match msg?.response {
            Some(sync_response::Response::Opened(o)) => println!("sync: opened at revision {}", o.revision),
            Some(sync_response::Response::Ack(a)) => {
                println!("sync: ack #{} revision {} duplicate {}", a.sequence, a.revision, a.duplicate);
            }
            other => println!("sync: {other:?}"),
        }
    }
    println!("ok");
    Ok(())
}
