"""The development PKI of cross-silo mode: `cipherray certs` and `make_dev_pki`."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cipherray import cli
from cipherray.runtime.errors import ConfigError
from cipherray.runtime.silo import TLS, make_dev_pki


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_cli_makes_a_ca_and_one_certificate_per_party(tmp_path, capsys):
    out = tmp_path / "pki"
    assert cli.main(["certs", "--parties", "bank,insurer", "--out", str(out)]) == 0
    assert "development only" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bank.crt", "bank.key", "ca.crt", "ca.key", "insurer.crt", "insurer.key"]
    for key in ("bank.key", "insurer.key", "ca.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600
    ca = _cert(out / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for party in ("bank", "insurer"):
        cert = _cert(out / f"{party}.crt")
        cert.verify_directly_issued_by(ca)  # raises if not signed by the CA
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert cn == party and san.get_values_for_type(x509.DNSName) == [party]
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
        assert TLS.from_dir(out, party).party() == party


def test_a_later_party_is_issued_by_the_same_ca(tmp_path):
    make_dev_pki(["bank"], tmp_path)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    tls = make_dev_pki(["hospital"], tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    _cert(tmp_path / "hospital.crt").verify_directly_issued_by(_cert(tmp_path / "ca.crt"))
    assert tls["hospital"].party() == "hospital"


@pytest.mark.parametrize("bad", ["Bank", "bank_1", "-x", "", "a" * 64])
def test_a_party_name_that_cannot_name_a_certificate_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="party name"):
        make_dev_pki([bad], tmp_path)
    assert cli.main(["certs", "--parties", f"ok,{bad or 'x_'}", "--out", str(tmp_path)]) == 2


def test_missing_files_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the TLS certificate"):
        TLS.from_dir(tmp_path, "bank").read()
