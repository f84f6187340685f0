//! Where the pieces of the run are (the account binary, the Spring jars,
//! PerfTest, the JVM) and the AMQP URI in the parts Spring takes.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use eventflow_runtime::testing::{AMQP_VAR, DATABASE_VAR};

use crate::{Args, fail, scratch::cache_dir};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Everything the run needs, checked before any process starts.
pub(crate) struct Pieces {
    pub(crate) account_bin: String,
    pub(crate) web_jar: PathBuf,
    pub(crate) consumer_jar: PathBuf,
    pub(crate) perftest_lib: PathBuf,
    pub(crate) java_version: String,
}

pub(crate) fn pieces(a: &Args) -> Pieces {
    let build = "run bench/build.sh (make bench does)";
    for var in [AMQP_VAR]
        .into_iter()
        .chain(a.postgres.then_some(DATABASE_VAR))
    {
        if std::env::var(var).map_or(true, |v| v.is_empty()) {
            fail(&format!(
                "{var} is not set: start the private services with `e2e/cluster/services.sh up` \
                 and `eval \"$(e2e/cluster/services.sh env)\"`"
            ));
        }
    }
    let account_bin = std::env::var("ACCOUNT_BIN").unwrap_or_else(|_| {
        // target/<profile>/examples/<bench> -> target/<profile>/account
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(Path::parent)
            .unwrap()
            .join("account")
            .display()
            .to_string()
    });
    if !Path::new(&account_bin).is_file() {
        fail(&format!(
            "no account binary at {account_bin}: cargo build --release -p eventflow-account --bin account"
        ));
    }
    let jars = std::env::var_os("SPRING_JARS")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("spring-bench/jars"));
    let (web_jar, consumer_jar) = (
        jars.join("bench-account-web.jar"),
        jars.join("bench-consumer.jar"),
    );
    for jar in [&web_jar, &consumer_jar] {
        if !jar.is_file() {
            fail(&format!("no {}: {build}", jar.display()));
        }
    }
    let perftest_lib = std::env::var_os("PERFTEST_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let pom = std::fs::read_to_string(repo_root().join("bench/perftest/pom.xml"))
                .unwrap_or_else(|e| fail(&format!("cannot read bench/perftest/pom.xml: {e}")));
            let version = pom
                .split_once("<perftest.version>")
                .and_then(|(_, rest)| rest.split_once('<'))
                .map(|(v, _)| v.trim().to_owned())
                .unwrap_or_else(|| fail("no <perftest.version> in bench/perftest/pom.xml"));
            cache_dir().join(format!("perftest/{version}/lib"))
        });
    let has_perftest = std::fs::read_dir(&perftest_lib).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("perf-test-"))
    });
    if !has_perftest {
        fail(&format!(
            "no perf-test jar in {}: {build}",
            perftest_lib.display()
        ));
    }
    let java = Command::new("java")
        .arg("-version")
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run java: {e} (OpenJDK 17 is needed)")));
    let java_version = String::from_utf8_lossy(&java.stderr)
        .lines()
        .next()
        .unwrap_or("java ?")
        .to_owned();
    Pieces {
        account_bin,
        web_jar,
        consumer_jar,
        perftest_lib,
        java_version,
    }
}

/// `amqp://user:pass@host:port/vhost` in the parts Spring's properties take.
pub(crate) struct Amqp {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) pass: String,
    pub(crate) vhost: String,
}

pub(crate) fn parse_amqp(uri: &str) -> Amqp {
    let rest = uri
        .strip_prefix("amqp://")
        .unwrap_or_else(|| panic!("{AMQP_VAR}={uri:?} is not amqp://..."));
    let (auth, rest) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5672"));
    let vhost = match vhost {
        "" => "/".to_owned(),
        v => v.replace("%2f", "/").replace("%2F", "/"),
    };
    Amqp {
        host: host.to_owned(),
        port: port.parse().expect("AMQP port"),
        user: user.to_owned(),
        pass: pass.to_owned(),
        vhost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amqp_uri_splits_into_spring_properties() {
        let a = parse_amqp("amqp://eventflow:secret@127.0.0.1:28672/%2f");
        assert_eq!(
            (
                a.host.as_str(),
                a.port,
                a.user.as_str(),
                a.pass.as_str(),
                a.vhost.as_str()
            ),
            ("127.0.0.1", 28672, "eventflow", "secret", "/")
        );
        assert_eq!(parse_amqp("amqp://u:p@h:1/v").vhost, "v");
    }
}
