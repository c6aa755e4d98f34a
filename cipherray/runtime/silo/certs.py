"""Party identities for cross-silo mode: `TLS` (where a party's certificate, key and CA
are) and a development PKI (`cipherray certs --parties bank,insurer --out DIR`).

Trust model
-----------
Every party holds a private key and a certificate whose subject common name and DNS
subject-alternative name are the party's name (``bank``), issued by a CA that all
parties trust. A connection between two parties is mutual TLS (`transport`):

1. the caller checks that the server's certificate chains to the CA and names the party
   it dialled (the DNS name is matched, whatever host or port the address has);
2. the server checks that the caller's certificate chains to the CA;
3. the server checks that the certificate's common name is a party of the job and the
   very party the message claims as its sender; anything else is refused
   (`PeerAuthError`).

So a party learns from the handshake only the peer's certificate (its party name and
public key). Whoever controls the CA's key can mint any party's identity: in production
the organisations agree on a CA (or pin each other's certificates through a CA of one
certificate each), and each organisation makes its own key and asks the CA to sign it,
so no private key ever leaves its organisation.

`make_dev_pki` is for development and tests only: it makes the CA and every party's key
in one directory, on one machine. Keys are EC P-256 (what gRPC's TLS stack accepts for
both server and client authentication) and written with mode 0600.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cipherray.runtime.errors import ConfigError

PARTY_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
CA_CERT, CA_KEY = "ca.crt", "ca.key"


def check_party_name(name: str) -> str:
    """A party name usable as a certificate's DNS name: lower-case letters, digits and
    inner hyphens, at most 63 characters. Returns it, else ConfigError."""
    if not isinstance(name, str) or not PARTY_NAME.match(name):
        raise ConfigError(
            f"party name {name!r} cannot name a certificate: use lower-case letters, "
            "digits and inner hyphens (a DNS label)"
        )
    return name


@dataclass(frozen=True)
class TLS:
    """Where one party's identity is: its certificate and private key (PEM files), and
    the CA certificate that every peer's certificate must chain to."""

    cert: str | Path
    key: str | Path
    ca: str | Path

    @classmethod
    def from_dir(cls, directory: str | Path, party: str) -> TLS:
        """The layout `cipherray certs` writes: DIR/<party>.crt, DIR/<party>.key, DIR/ca.crt."""
        d = Path(directory)
        return cls(d / f"{party}.crt", d / f"{party}.key", d / CA_CERT)

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(certificate chain, private key, CA certificate) as PEM bytes."""
        out = []
        for what, path in (("certificate", self.cert), ("key", self.key), ("CA", self.ca)):
            try:
                out.append(Path(path).read_bytes())
            except OSError as e:
                raise ConfigError(f"cannot read the TLS {what} {path}: {e.strerror}") from None
        return out[0], out[1], out[2]

    def party(self) -> str:
        """The party name this certificate was issued to (its subject common name)."""
        return cert_party(self.read()[0])


def cert_party(pem: bytes) -> str:
    """The subject common name of a PEM certificate."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ConfigError("certificate has no single subject common name")
    return str(names[0].value)


# -- development PKI -------------------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only (created 0600, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_or_make_ca(out: Path, days: int, org: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    crt, key = out / CA_CERT, out / CA_KEY
    if crt.exists() and key.exists():  # issue more parties under the same CA
        return (
            x509.load_pem_x509_certificate(crt.read_bytes()),
            serialization.load_pem_private_key(key.read_bytes(), password=None),
        )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org} development CA"),
        ]
    )
    now = _dt.datetime.now(_dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key, _key_pem(ca_key))
    _write_public(crt, ca.public_bytes(serialization.Encoding.PEM))
    return ca, ca_key


def issue(ca, ca_key, party: str, days: int, org: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key and a certificate for `party` signed by the CA: subject CN and
    DNS name = the party, usable for TLS server and client authentication. Returns
    (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    check_party_name(party)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.COMMON_NAME, party),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_dev_pki(
    parties: list[str], out: str | Path, days: int = 365, org: str = "cipherray dev"
) -> dict[str, TLS]:
    """A development CA (reused if DIR already has one) and one key + certificate per
    party, written as DIR/ca.crt, DIR/ca.key, DIR/<party>.crt, DIR/<party>.key (keys
    0600). Returns each party's `TLS`."""
    if not parties:
        raise ConfigError("make_dev_pki needs at least one party")
    if len(set(parties)) != len(parties):
        raise ConfigError(f"duplicate party names in {parties}")
    for p in parties:
        check_party_name(p)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _load_or_make_ca(out, days, org)
    tls = {}
    for p in parties:
        cert, key = issue(ca, ca_key, p, days, org)
        _write_private(out / f"{p}.key", key)
        _write_public(out / f"{p}.crt", cert)
        tls[p] = TLS.from_dir(out, p)
    return tls


def main(args) -> int:
    """`cipherray certs --parties a,b --out DIR [--days N]`."""
    import sys

    parties = [p.strip() for p in args.parties.split(",") if p.strip()]
    try:
        make_dev_pki(parties, args.out, days=args.days)
    except ConfigError as e:
        print(f"cipherray certs: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(
        f"development CA: {out / CA_CERT} (its key {out / CA_KEY} can make any party's "
        "identity: keep it private, or delete it once no party is to be added)"
    )
    for p in parties:
        print(f"{p}: {out / (p + '.crt')} {out / (p + '.key')}")
    print(
        "development only: every party's key was made here (README, "
        '"Deploying across organisations", says how production differs)'
    )
    return 0
