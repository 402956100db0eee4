//! The X.509 extensions rcgen 0.13 gets wrong for DER, encoded here and handed to rcgen as custom
//! extensions. Strict parsers (Python `cryptography`, the Rust `der` crate) refuse a certificate that is
//! not canonical DER, so a client built on one could not talk to the webhook:
//! - KeyUsage: rcgen always writes 9 bits; a named bit list must drop its trailing zero bits
//!   (X.690 §11.2.2), so `digitalSignature` alone is `03 02 07 80`, not `03 03 07 80 00`.
//! - BasicConstraints of a serving certificate: rcgen's `IsCa::ExplicitNoCa` writes `cA FALSE`, a DEFAULT
//!   value, which DER forbids encoding (X.690 §11.5). Not a CA is the empty SEQUENCE.
//! - SubjectKeyIdentifier of a serving certificate: rcgen writes it only together with that
//!   BasicConstraints, so it comes from here too.

use rcgen::CustomExtension;
use sha2::{Digest, Sha256};

const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];

/// The KeyUsage bits we use, numbered as in RFC 5280 §4.2.1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyUsage {
    DigitalSignature = 0,
    KeyCertSign = 5,
    CrlSign = 6,
}

/// A critical KeyUsage extension (RFC 5280: "conforming CAs SHOULD mark this extension as critical").
pub(super) fn key_usage(usages: &[KeyUsage]) -> CustomExtension {
    // Bit 0 is the most significant bit of the first octet.
    let bits = usages
        .iter()
        .fold(0u16, |bits, usage| bits | (0x8000 >> *usage as u16));
    let used_bits = 16 - bits.trailing_zeros() as usize;
    let octets = used_bits.div_ceil(8);
    let unused_bits = octets * 8 - used_bits;
    let mut content = vec![0x03, (1 + octets) as u8, unused_bits as u8];
    content.extend_from_slice(&bits.to_be_bytes()[..octets]);
    critical(CustomExtension::from_oid_content(KEY_USAGE, content))
}

/// A critical BasicConstraints saying "not a CA": an empty SEQUENCE, as Go's crypto/x509 writes it.
pub(super) fn not_a_ca() -> CustomExtension {
    critical(CustomExtension::from_oid_content(
        BASIC_CONSTRAINTS,
        vec![0x30, 0x00],
    ))
}

/// SubjectKeyIdentifier of `subject_public_key_info` (DER): its SHA-256 cut to 160 bits, the same method
/// rcgen uses for the CA, so every identifier we issue is derived one way.
pub(super) fn subject_key_identifier(subject_public_key_info: &[u8]) -> CustomExtension {
    let digest = Sha256::digest(subject_public_key_info);
    let mut content = vec![0x04, 20];
    content.extend_from_slice(&digest[..20]);
    CustomExtension::from_oid_content(SUBJECT_KEY_IDENTIFIER, content)
}

fn critical(mut extension: CustomExtension) -> CustomExtension {
    extension.set_criticality(true);
    extension
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeyUsage::*;

    #[test]
    fn key_usage_drops_trailing_zero_bits() {
        assert_eq!(key_usage(&[DigitalSignature]).content(), [3, 2, 7, 0x80]);
        assert_eq!(
            key_usage(&[KeyCertSign, CrlSign, DigitalSignature]).content(),
            [3, 2, 1, 0x86]
        );
        assert_eq!(key_usage(&[]).content(), [3, 1, 0]);
        assert!(key_usage(&[DigitalSignature]).criticality());
    }

    #[test]
    fn not_a_ca_omits_the_default_ca_flag() {
        let extension = not_a_ca();
        assert_eq!(extension.content(), [0x30, 0x00]);
        assert!(extension.criticality());
    }

    #[test]
    fn subject_key_identifier_is_a_160_bit_octet_string() {
        let content = subject_key_identifier(b"spki").content().to_vec();
        assert_eq!(content.len(), 22);
        assert_eq!(content[..2], [0x04, 20]);
        assert_eq!(content[2..], Sha256::digest(b"spki")[..20]);
    }
}
