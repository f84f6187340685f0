//! Data Flow app registrations as `app import` takes them:
//! `<type>.<name>=<uri>`, e.g. `source.time=docker:springcloudstream/time-source-rabbit:5.0.0`.
//! `<type>.<name>.metadata=…` and `<type>.<name>.bootVersion=…` lines are
//! Data Flow's own and skipped. Only `docker:` URIs name something
//! Kubernetes can run.

use eventflow_operator::api::APP_TYPES;

use super::{Problems, properties};

/// One app to register: `<type>.<name>` and its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppEntry {
    /// `source.time`: the AppRegistration's name.
    pub key: String,
    /// The image (the URI without `docker:`).
    pub image: String,
    /// `FILE:LINE`, for messages.
    pub origin: String,
}

/// Longest app name: `processor.` + 63 fits the AppRegistration name limit (73).
const MAX_NAME: usize = 63;

/// The registrations of one properties file; problems are added to `problems`.
pub fn read(text: &str, file: &str, problems: &mut Problems) -> Vec<AppEntry> {
    let mut out = Vec::new();
    for entry in properties::parse(text) {
        let origin = format!("{file}:{}", entry.line);
        let key = entry.key.as_str();
        let Some((app_type, name)) = key.split_once('.') else {
            problems.error(format!(
                "{origin}: `{key}` is not an app registration: write <type>.<name>=docker:<image>"
            ));
            continue;
        };
        if name.ends_with(".metadata") || name.ends_with(".bootVersion") {
            continue;
        }
        if !APP_TYPES.contains(&app_type) {
            problems.error(format!(
                "{origin}: `{key}`: type `{app_type}` is not one of {} (tasks do not run as streams)",
                APP_TYPES.join(", ")
            ));
            continue;
        }
        if !super::is_dns_label(name, MAX_NAME) {
            problems.error(format!(
                "{origin}: `{key}`: app name `{name}` is not a DNS label of at most {MAX_NAME} characters \
                 (lower-case letters, digits and `-`, starting with a letter)"
            ));
            continue;
        }
        let uri = entry.value.trim();
        let Some(image) = uri.strip_prefix("docker:") else {
            let scheme = uri.split_once(':').map_or(uri, |(s, _)| s);
            problems.error(format!(
                "{origin}: `{key}={uri}`: a {scheme}: URI cannot run on Kubernetes; only docker: URIs can \
                 (build an image of the app and register docker:<image>)"
            ));
            continue;
        };
        let image = image.trim_start_matches('/');
        if image.is_empty() || image.contains(char::is_whitespace) {
            problems.error(format!(
                "{origin}: `{key}={uri}`: docker: needs an image reference"
            ));
            continue;
        }
        out.push(AppEntry {
            key: key.to_owned(),
            image: image.to_owned(),
            origin,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BULK: &str = "\
# Data Flow's bulk registration file
source.time=docker:springcloudstream/time-source-rabbit:5.0.0
source.time.metadata=maven:org.springframework.cloud.stream.app:time-source-rabbit:jar:metadata:5.0.0
source.time.bootVersion=3
processor.transform=docker:docker.io/eventflow/spring-transform-processor:dev
! another comment
sink.log: docker:springcloudstream/log-sink-rabbit:5.0.0
app.audit=docker:eventflow/counter:dev
";

    #[test]
    fn docker_registrations_are_read_and_metadata_lines_skipped() {
        let mut problems = Problems::default();
        let got = read(BULK, "apps.properties", &mut problems);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        let keys: Vec<(&str, &str)> = got
            .iter()
            .map(|a| (a.key.as_str(), a.image.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("source.time", "springcloudstream/time-source-rabbit:5.0.0"),
                (
                    "processor.transform",
                    "docker.io/eventflow/spring-transform-processor:dev"
                ),
                ("sink.log", "springcloudstream/log-sink-rabbit:5.0.0"),
                ("app.audit", "eventflow/counter:dev"),
            ]
        );
        assert_eq!(got[2].origin, "apps.properties:7");
    }

    #[test]
    fn maven_file_and_http_uris_are_refused_naming_line_and_key() {
        let mut problems = Problems::default();
        let got = read(
            "source.time=docker:ok/time:1\n\
             sink.log=maven://org.springframework.cloud.stream.app:log-sink-rabbit:5.0.0\n\
             sink.file=file:///tmp/file-sink.jar\n\
             processor.x=https://repo.example.com/x.jar\n",
            "apps.properties",
            &mut problems,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(problems.errors.len(), 3, "{:?}", problems.errors);
        assert!(problems.errors[0].contains("apps.properties:2: `sink.log=maven:"));
        assert!(problems.errors[0].contains("only docker: URIs"));
        assert!(problems.errors[1].contains("apps.properties:3: `sink.file=file:"));
        assert!(problems.errors[2].contains("apps.properties:4: `processor.x=https:"));
    }

    #[test]
    fn types_names_and_empty_images_are_checked() {
        let mut problems = Problems::default();
        let got = read(
            "task.timestamp=docker:springcloudtask/timestamp-task:2.1.1\n\
             source.Time=docker:x/y:1\n\
             nodot=docker:x/y:1\n\
             sink.log=docker:\n",
            "a.properties",
            &mut problems,
        );
        assert!(got.is_empty());
        let e = &problems.errors;
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("type `task`"));
        assert!(e[1].contains("`Time` is not a DNS label"));
        assert!(e[2].contains("`nodot` is not an app registration"));
        assert!(e[3].contains("docker: needs an image"));
    }
}
