//! Port-forwards through the API server (like `kubectl port-forward`): to a
//! pod, or to a Ready pod behind a Service, reached at a local address.

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::net::TcpListener;

use crate::pods::pod_of_service;

/// Forwards a local loopback port to `port` of a pod through the API server
/// (like `kubectl port-forward`), one stream per accepted connection.
/// Returns the local address; the forwarder runs until the test ends.
pub async fn port_forward(pods: Api<Pod>, pod: &str, port: u16) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pod = pod.to_owned();
    tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let pods = pods.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let mut forwarder = match pods.portforward(&pod, &[port]).await {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("port-forward to {pod}:{port}: {e}");
                        return;
                    }
                };
                if let Some(mut upstream) = forwarder.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
                }
                drop(forwarder);
            });
        }
    });
    Ok(addr)
}

/// `http://127.0.0.1:<port>` forwarding to `port` of a Ready pod behind `service`.
pub async fn forward_service(
    client: &Client,
    namespace: &str,
    service: &str,
    port: u16,
) -> Result<String> {
    let pod = pod_of_service(client, namespace, service).await?;
    let addr = port_forward(Api::namespaced(client.clone(), namespace), &pod, port).await?;
    Ok(format!("http://{addr}"))
}
