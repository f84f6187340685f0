//! A managed broker's TLS listener: where its certificate is mounted, the
//! `rabbitmq.conf` lines that serve AMQPS only, and — when the user gives
//! no certificate — the CA and server certificate the operator generates
//! (ECDSA P-256, valid for ten years; renewal is deleting their Secret).
//! Generation needs randomness but no I/O; the broker controller stores
//! the results in Secrets.

use std::collections::BTreeMap;

use eventflow_contract::env::BROKER_CA_KEY;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::naming;

/// The AMQPS port of a managed broker serving TLS.
pub const AMQPS_PORT: i32 = 5671;
/// Where the broker's certificate, key and CA are mounted.
pub const MOUNT_DIR: &str = "/etc/rabbitmq-tls";
/// Keys of a `kubernetes.io/tls` Secret (and of the generated ones).
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
/// The CA's private key, in the generated CA Secret only.
pub const CA_KEY_KEY: &str = "ca.key";
const VALIDITY: time::Duration = time::Duration::days(3650);

#[derive(Debug, thiserror::Error)]
#[error("could not generate a certificate: {0}")]
pub struct CertError(#[from] rcgen::Error);

/// The `rabbitmq.conf` lines of a TLS-only broker: no plaintext AMQP
/// listener, AMQPS on [`AMQPS_PORT`] with the mounted certificate. Clients
/// present no certificate (they log in with a password).
pub fn conf() -> String {
    format!(
        "listeners.tcp = none\n\
         listeners.ssl.default = {AMQPS_PORT}\n\
         ssl_options.cacertfile = {MOUNT_DIR}/{BROKER_CA_KEY}\n\
         ssl_options.certfile = {MOUNT_DIR}/{CERT_KEY}\n\
         ssl_options.keyfile = {MOUNT_DIR}/{KEY_KEY}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n"
    )
}

/// The names a client may reach broker `name` of `namespace` by: its
/// client Service (short, namespaced, `svc` and fully qualified) and each
/// node through the headless Service.
pub fn server_names(name: &str, namespace: &str) -> Vec<String> {
    let headless = naming::broker(name).headless;
    vec![
        name.to_owned(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
        format!("*.{headless}.{namespace}.svc"),
        format!("*.{headless}.{namespace}.svc.cluster.local"),
    ]
}

fn ca_params(name: &str, namespace: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "eventflow");
    dn.push(
        DnType::CommonName,
        format!("eventflow CA of EventBroker {namespace}/{name}"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn valid_from_now(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks a little behind ours.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
}

/// A new CA for broker `name`: the data of its Secret (`ca.crt`, `ca.key`).
pub fn generate_ca(name: &str, namespace: &str) -> Result<BTreeMap<String, String>, CertError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(name, namespace);
    valid_from_now(&mut params);
    let cert = params.self_signed(&key)?;
    Ok(BTreeMap::from([
        (BROKER_CA_KEY.to_owned(), cert.pem()),
        (CA_KEY_KEY.to_owned(), key.serialize_pem()),
    ]))
}

/// A server certificate for broker `name`, signed by the CA of `ca` (the
/// data [`generate_ca`] made): the data of its Secret (`tls.crt`,
/// `tls.key`, and `ca.crt` for the broker and its clients).
pub fn issue_server(
    name: &str,
    namespace: &str,
    ca: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, CertError> {
    let (Some(ca_cert), Some(ca_key)) = (ca.get(BROKER_CA_KEY), ca.get(CA_KEY_KEY)) else {
        return Err(CertError(rcgen::Error::CouldNotParseCertificate));
    };
    // The issuer is rebuilt from the CA's parameters (its name and key
    // identifier derive from them and its key), so no certificate parsing.
    let issuer = Issuer::new(ca_params(name, namespace), KeyPair::from_pem(ca_key)?);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(server_names(name, namespace))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "eventflow");
    dn.push(DnType::CommonName, format!("{name}.{namespace}.svc"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    valid_from_now(&mut params);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(BTreeMap::from([
        (CERT_KEY.to_owned(), cert.pem()),
        (KEY_KEY.to_owned(), key.serialize_pem()),
        (BROKER_CA_KEY.to_owned(), ca_cert.clone()),
    ]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_conf_serves_amqps_only_with_the_mounted_certificate() {
        let conf = conf();
        assert!(conf.contains("listeners.tcp = none\n"));
        assert!(conf.contains("listeners.ssl.default = 5671\n"));
        assert!(conf.contains("ssl_options.certfile = /etc/rabbitmq-tls/tls.crt\n"));
        assert!(conf.contains("ssl_options.keyfile = /etc/rabbitmq-tls/tls.key\n"));
        assert!(conf.contains("ssl_options.cacertfile = /etc/rabbitmq-tls/ca.crt\n"));
    }

    #[test]
    fn the_server_certificate_names_every_address_of_the_broker() {
        assert_eq!(
            server_names("rabbit", "demo"),
            [
                "rabbit",
                "rabbit.demo",
                "rabbit.demo.svc",
                "rabbit.demo.svc.cluster.local",
                "*.rabbit-nodes.demo.svc",
                "*.rabbit-nodes.demo.svc.cluster.local",
            ]
        );
    }

    #[test]
    fn a_server_certificate_is_signed_by_the_generated_ca_and_carries_it() {
        let ca = generate_ca("rabbit", "demo").unwrap();
        assert!(ca[BROKER_CA_KEY].starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca[CA_KEY_KEY].contains("PRIVATE KEY"));
        let server = issue_server("rabbit", "demo", &ca).unwrap();
        assert_eq!(server[BROKER_CA_KEY], ca[BROKER_CA_KEY]);
        assert!(server[CERT_KEY].starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(server[CERT_KEY], ca[BROKER_CA_KEY]);
        // A second CA is another CA (a deleted CA Secret is a rotation).
        assert_ne!(
            generate_ca("rabbit", "demo").unwrap()[BROKER_CA_KEY],
            ca[BROKER_CA_KEY]
        );
        assert!(issue_server("rabbit", "demo", &BTreeMap::new()).is_err());
    }
}
