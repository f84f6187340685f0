//! A Spring Cloud Stream example app (apps/spring) run as a local process
//! with the environment the operator gave its Deployment: the Secret
//! references resolved from the real Secret, ports moved to reserved ones.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use eventflow_runtime::testing::ReservedPort;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{Api, Client};

/// Where `make spring-apps` puts the example jars.
pub fn jar(module: &str) -> PathBuf {
    let dir = std::env::var("EVENTFLOW_SPRING_JARS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let cache = std::env::var("EVENTFLOW_CACHE")
                .unwrap_or_else(|_| format!("{}/.cache/eventflow", std::env::var("HOME").unwrap()));
            PathBuf::from(cache).join("spring/jars")
        });
    let jar = dir.join(format!("{module}.jar"));
    assert!(
        jar.is_file(),
        "{} is missing: this test needs the Spring example jars (`make spring-apps`)",
        jar.display()
    );
    jar
}

/// The container environment of `deployment`, Secret references resolved.
pub async fn deployment_env(client: &Client, ns: &str, deployment: &str) -> Vec<(String, String)> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .unwrap();
    let container = d.spec.unwrap().template.spec.unwrap().containers.remove(0);
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for var in container.env.unwrap_or_default() {
        let value = match (var.value, var.value_from.and_then(|f| f.secret_key_ref)) {
            (Some(v), _) => Some(v),
            (None, Some(r)) => {
                let secret = secrets.get(&r.name).await.unwrap();
                secret
                    .data
                    .unwrap_or_default()
                    .get(&r.key)
                    .map(|b| String::from_utf8(b.0.clone()).unwrap())
            }
            (None, None) => None,
        };
        if let Some(value) = value {
            out.push((var.name, value));
        }
    }
    out
}

/// A running Spring app; killed on drop.
pub struct SpringApp {
    child: Child,
    pub admin: String,
    log: PathBuf,
    /// Held while the app runs (Java listens with SO_REUSEADDR, as the
    /// reservation does), so nothing else takes its ports.
    _ports: (ReservedPort, ReservedPort),
}

impl SpringApp {
    /// `java -jar <module>.jar` with `env`; the web and management ports
    /// are moved to free loopback ports by command-line arguments (which
    /// outrank `SPRING_APPLICATION_JSON`), so tests can run side by side.
    pub fn start(module: &str, env: &[(String, String)]) -> Self {
        let ports = (ReservedPort::new(), ReservedPort::new());
        let (web, admin) = (ports.0.port(), ports.1.port());
        let log = std::env::temp_dir().join(format!(
            "eventflow-spring-{module}-{}-{admin}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("java");
        cmd.arg("-XX:TieredStopAtLevel=1")
            .arg("-XX:+UseSerialGC")
            .arg("-jar")
            .arg(jar(module))
            .arg(format!("--server.port={web}"))
            .arg(format!("--management.server.port={admin}"))
            .arg("--server.address=127.0.0.1")
            .arg("--management.server.address=127.0.0.1")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = cmd.spawn().expect("java on PATH");
        Self {
            child,
            admin: format!("http://127.0.0.1:{admin}"),
            log,
            _ports: ports,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the actuator's readiness group is UP.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Spring app exited with {status} before ready:\n{}",
                    self.log_text()
                );
            }
            if let Ok(r) = reqwest::get(format!("{}/actuator/health/readiness", self.admin)).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the Spring app was not ready after {timeout:?}:\n{}",
            self.log_text()
        );
    }

    /// A JSON actuator endpoint, e.g. `sink`.
    pub async fn endpoint(&self, name: &str) -> serde_json::Value {
        let r = reqwest::get(format!("{}/actuator/{name}", self.admin))
            .await
            .unwrap();
        assert!(r.status().is_success(), "/actuator/{name}: {}", r.status());
        r.json().await.unwrap()
    }
}

impl Drop for SpringApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
