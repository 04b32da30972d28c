//! Discovery: an upstream's services and descriptors, from its server reflection (v1, or
//! v1alpha where that is all it serves) or from a descriptor-set file.

use std::time::Duration;

use portway::proxy::{Descriptors, reflect};
use portway::transcode::MessageCodec as _;

use crate::upstream::{Lang, Upstream};

const TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn reflection_lists_the_services_and_gives_whole_descriptors() {
    for lang in Lang::ALL {
        let up = Upstream::start(lang, &[]).await;
        let reflected = reflect(up.channel().await, TIMEOUT).await.expect("reflection answers");
        // grpcio-reflection serves only v1alpha; @grpc/reflection serves v1.
        let expected_version = if lang == Lang::Python { "v1alpha" } else { "v1" };
        assert_eq!(reflected.version, expected_version, "{lang:?}");
        assert!(reflected.services.contains(&"grpc.testing.TestService".to_string()), "{lang:?}: {reflected:?}");
        let d = Descriptors::new(&reflected.services, reflected.files).expect("the descriptors resolve");
        let mut services = d.services.clone();
        services.sort();
        // Health and reflection are portway's own; the Node server also lists a service it
        // declares but does not implement.
        let mut expected = vec!["grpc.testing.TestService", "portway.upstream.Echo"];
        if lang == Lang::Node {
            expected.insert(1, "grpc.testing.UnimplementedService");
        }
        assert_eq!(services, expected, "{lang:?}");
        // The codecs work: a message with well-known types, maps and a oneof.
        let codec = d.schema.codec("portway.upstream.Everything").expect("described");
        let json = r#"{"big":"12","counts":{"a":"1","b":"2"},"at":"2024-01-01T00:00:00Z","textChoice":"x"}"#;
        let binary = codec.json_to_binary(json.as_bytes()).expect("reads");
        let back = String::from_utf8(codec.binary_to_json(&binary).expect("writes")).expect("UTF-8");
        assert!(back.contains(r#""counts":{"a":"1","b":"2"}"#), "{lang:?}: {back}");
        assert!(back.ends_with(r#""textChoice":"x"}"#), "{lang:?}: {back}");
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_is_an_error_naming_why() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).expect("url").connect_lazy();
    let err = reflect(channel, TIMEOUT).await.expect_err("nothing listens there");
    assert!(err.to_string().starts_with("it is unavailable"), "{err}");
}

#[tokio::test]
async fn a_server_without_reflection_says_so() {
    // portway's own interop service mounted alone: no reflection service.
    let routes = tonic::service::Routes::new(portway::services::interop::service(1 << 20));
    let err = reflect(routes, TIMEOUT).await.expect_err("no reflection");
    assert_eq!(err.to_string(), "it serves no server reflection (neither v1 nor v1alpha)");
}

#[tokio::test]
async fn reflection_works_in_process_too() {
    let mounted = portway::services::mount(&portway::services::ServiceOptions::default()).await.expect("mount");
    let reflected = reflect(mounted.routes, TIMEOUT).await.expect("portway's own reflection answers");
    assert_eq!(reflected.version, "v1");
    let d = Descriptors::new(&reflected.services, reflected.files).expect("resolves");
    assert_eq!(d.services, ["portway.state.v1.StateService"]);
}

/// `buf build -o FILE` on tests/upstream/proto/VERSION: what users give `--descriptor-set`.
pub fn buf_build(version: &str, out: &std::path::Path) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new(root.join("tests/upstream/node_modules/.bin/buf"))
        .current_dir(root.join("tests/upstream/proto").join(version))
        .args(["build", "-o"])
        .arg(out)
        .status()
        .expect("run buf");
    assert!(status.success(), "buf build failed");
}

#[tokio::test]
async fn a_descriptor_set_file_gives_the_same_services_as_reflection() {
    // Starting an upstream also makes sure tests/upstream is installed (buf comes with it).
    let up = Upstream::start(Lang::Python, &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("echo.binpb");
    buf_build("v2", &file);
    let d = Descriptors::read(&file).expect("reads");
    assert_eq!(d.services, ["portway.upstream.Echo"]);
    let echo = d.schema.service_methods("portway.upstream.Echo");
    let names: Vec<&str> = echo.iter().map(|m| m.method()).collect();
    assert_eq!(names, ["Say", "Reflect", "Shout"]);
    // What reflection says of the same service (v1 there) has the same methods but `Shout`.
    let reflected = reflect(up.channel().await, TIMEOUT).await.expect("reflects");
    let r = Descriptors::new(&reflected.services, reflected.files).expect("resolves");
    let names: Vec<String> =
        r.schema.service_methods("portway.upstream.Echo").iter().map(|m| m.method().to_owned()).collect();
    assert_eq!(names, ["Say", "Reflect"]);

    let missing = Descriptors::read(&dir.path().join("nope.binpb")).expect_err("no such file");
    assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    std::fs::write(dir.path().join("junk.binpb"), b"\xff\xffjunk").expect("write");
    let junk = Descriptors::read(&dir.path().join("junk.binpb")).expect_err("not a descriptor set");
    assert!(junk.to_string().contains("is not a FileDescriptorSet"), "{junk}");
}

/// The methods of `portway.upstream.Echo` portway's own reflection describes.
async fn echo_methods(portway: &crate::gateway::Proxied) -> Vec<String> {
    let reflected = reflect(portway.channel().await, TIMEOUT).await.expect("portway's reflection");
    let d = Descriptors::new(&reflected.services, reflected.files).expect("resolves");
    d.schema.service_methods("portway.upstream.Echo").iter().map(|m| m.method().to_owned()).collect()
}

#[tokio::test]
async fn a_refresh_picks_up_a_new_method_on_demand_and_on_its_interval() {
    for on_interval in [false, true] {
        let mut up = Upstream::start(Lang::Node, &["--echo", "v1"]).await;
        let mut proxy = portway::proxy::ProxyConfig::default();
        proxy.upstreams = vec![portway::proxy::UpstreamConfig::new("node", vec![up.url().parse().expect("target")])];
        proxy.refresh_interval = on_interval.then_some(Duration::from_millis(100));
        let portway = crate::gateway::Proxied::with(proxy, portway::Config::default()).await;
        assert_eq!(echo_methods(&portway).await, ["Say", "Reflect"]);

        up.restart(&["--echo", "v2"]).await;
        if on_interval {
            // Polled, not slept on: the interval is what this waits for.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while echo_methods(&portway).await.len() < 3 {
                assert!(tokio::time::Instant::now() < deadline, "no refresh within 20 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            assert_eq!(portway.catalog.refresh().await, Vec::<String>::new());
        }
        assert_eq!(echo_methods(&portway).await, ["Say", "Reflect", "Shout"], "on interval: {on_interval}");
    }
}
