//! The wire formats of AWS ALB's mutual-TLS headers (`X-Amzn-Mtls-Clientcert*`) that are not
//! plain X.509 facts; those come from `crate::x509`.

mod pem;

pub use pem::{push_url_encoded_pem, url_encoded_pem};
