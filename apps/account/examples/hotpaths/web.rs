//! The account app's web role in this process: its store on a fresh
//! PostgreSQL database and its router (`app::web_router`, as `account web`
//! serves it) on a loopback port, both on the web role's own runtime so its
//! threads' CPU is told apart from the clients'. No relay runs beside it:
//! path 1 measures the command alone, path 2 relays what it committed.

use std::sync::Arc;

use eventflow_runtime::{
    app::web_router, metrics::Metrics, store::EventStore, testing::fresh_postgres, web::WebContext,
};
use tokio::{net::TcpListener, runtime::Handle, sync::Notify};
use tokio_util::sync::CancellationToken;

pub(crate) struct WebRole {
    /// `http://127.0.0.1:<port>`: the base of every link it serves and the
    /// relay publishes.
    pub(crate) url: String,
    pub(crate) store: EventStore,
    /// The store's database URL and name.
    pub(crate) database_url: String,
    pub(crate) database: String,
    stop: CancellationToken,
}

/// The database name at the end of a PostgreSQL URL.
pub(crate) fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

impl WebRole {
    /// Starts it on `rt` (the web role's runtime).
    pub(crate) async fn start(rt: &Handle) -> Self {
        let database_url = fresh_postgres().await;
        let url = database_url.clone();
        let stop = CancellationToken::new();
        let serving = stop.clone();
        let (store, addr) = rt
            .spawn(async move {
                let store = EventStore::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("the event store on {url}: {e}"));
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let ctx = WebContext {
                    store: store.clone(),
                    metrics: Metrics::default(),
                    relay: Arc::new(Notify::new()),
                };
                let router = web_router(&eventflow_account::spec(), ctx);
                tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(serving.cancelled_owned())
                        .await
                        .unwrap();
                });
                (store, addr)
            })
            .await
            .unwrap();
        Self {
            url: format!("http://{addr}"),
            store,
            database: database_name(&database_url),
            database_url,
            stop,
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}
