//! Opening a broker connection, over TLS when the URI says `amqps`. The
//! broker's certificate is always verified: against the CA given (PEM, the
//! `ca.crt` of the Secret the URI comes from, [`crate::env::BROKER_CA`] in
//! an app) and the public roots compiled into the binary (the webpki root
//! certificates, so an image needs no CA bundle of its own), and its name
//! must match the URI's host. An `amqp` URI ignores the CA. The apps, the
//! operator and the tests all connect through [`connect`].

use lapin::{Connection, ConnectionProperties, tcp::OwnedTLSConfig};

/// The PEM marker every certificate starts with.
const PEM_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";

/// Checks that `pem` holds at least one PEM certificate; the problem
/// otherwise (the TLS layer would silently trust nothing from it).
pub fn check_ca(pem: &str) -> Result<(), String> {
    if pem.contains(PEM_CERTIFICATE) {
        Ok(())
    } else {
        Err(format!(
            "holds no PEM certificate (no {PEM_CERTIFICATE} line)"
        ))
    }
}

/// Whether `uri` asks for TLS.
pub fn is_tls(uri: &str) -> bool {
    uri.trim_start()
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("amqps://"))
}

/// Connects to `uri`, verifying an `amqps` broker against `ca` and the
/// public roots.
pub async fn connect(
    uri: &str,
    ca: Option<&str>,
    properties: ConnectionProperties,
) -> lapin::Result<Connection> {
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: ca.filter(|_| is_tls(uri)).map(str::to_owned),
    };
    Connection::connect_with_config(uri, properties, tls, lapin::runtime::default_runtime()?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_decides_tls() {
        assert!(is_tls("amqps://u:p@rabbit.demo.svc:5671/%2f"));
        assert!(is_tls("AMQPS://rabbit:5671"));
        assert!(!is_tls("amqp://u:p@rabbit.demo.svc:5672/%2f"));
        assert!(!is_tls("amqp"));
    }

    #[test]
    fn a_ca_without_a_certificate_is_named() {
        assert!(check_ca("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").is_ok());
        let e = check_ca("not a certificate").unwrap_err();
        assert!(e.contains("no -----BEGIN CERTIFICATE----- line"), "{e}");
    }
}
