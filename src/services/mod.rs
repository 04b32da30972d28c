//! The services portway mounts: the only list of them. The gateway core knows none of
//! these; it serves whatever `Routes` it is given.

pub mod interop;
pub mod state;

use tonic::service::Routes;
use tonic_health::server::HealthReporter;

/// Which optional services to mount, and their limits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceOptions {
    /// Mount `grpc.testing.TestService` (the gRPC interop test service). Default: off.
    pub interop: bool,
    /// Largest message each service decodes or encodes. Default: 4 MiB.
    pub max_message_bytes: usize,
    /// The state store (`portway.state.v1.StateService`), always mounted. Default: durable
    /// under `./portway-data`.
    pub state: state::StateOptions,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self { interop: false, max_message_bytes: 4 * 1024 * 1024, state: state::StateOptions::default() }
    }
}

/// Why the services could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The state store could not be opened.
    #[error(transparent)]
    State(#[from] state::OpenError),
    /// The reflection service could not be built.
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The mounted services and the handle that sets their health.
pub struct Mounted {
    /// The routes to hand to [`crate::Gateway::builder`].
    pub routes: Routes,
    /// Sets the status `grpc.health.v1.Health` (and `/healthz`) reports.
    pub health: HealthReporter,
    /// The state store behind `portway.state.v1.StateService` (for embedding and shutdown).
    pub state: state::Store,
}

/// Builds the routes: health, reflection (v1 and v1alpha), the state store (opening it)
/// and the optional services.
pub async fn mount(options: &ServiceOptions) -> Result<Mounted, MountError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    let mut names: Vec<&str> = vec!["grpc.health.v1.Health"];
    let mut routes = Routes::builder();
    routes.add_service(health_service);
    let mut state_options = options.state.clone();
    state_options.max_message_bytes = options.max_message_bytes;
    let store = state::Store::open(state_options).await?;
    routes.add_service(state::service(store.clone(), options.max_message_bytes));
    names.push(state::SERVICE_NAME);
    health.set_service_status(state::SERVICE_NAME, tonic_health::ServingStatus::Serving).await;
    if options.interop {
        let svc = interop::service(options.max_message_bytes);
        names.push(<crate::pb::grpc::testing::test_service_server::TestServiceServer<interop::Interop> as tonic::server::NamedService>::NAME);
        health
            .set_serving::<crate::pb::grpc::testing::test_service_server::TestServiceServer<interop::Interop>>()
            .await;
        routes.add_service(svc);
    }

    let reflection = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for n in &names {
            b = b.with_service_name(*n);
        }
        b
    };
    routes.add_service(reflection().build_v1()?);
    routes.add_service(reflection().build_v1alpha()?);
    Ok(Mounted { routes: routes.routes().prepare(), health, state: store })
}
