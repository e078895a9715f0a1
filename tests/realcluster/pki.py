"""A throw-away PKI for one test cluster: a CA, serving and client certificates, service-account keys.

A real cluster's API server is reached over TLS and knows its users by client certificate or token;
RBAC decides on those identities. So the launcher makes what kubeadm makes, with `cryptography`:
one CA signs the apiserver's serving certificate (SANs for 127.0.0.1, localhost and the in-cluster
service names), a client certificate per control-plane identity (admin in `system:masters`, the
controller manager, the scheduler, the apiserver's kubelet client) and an RSA key pair that signs
and verifies service-account tokens. Keys are small (2048-bit RSA, EC P-256 for clients) and the
certificates short-lived: nothing here outlives a test run.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


class ClusterPKI:
    """Writes every credential of one cluster into `directory` and hands out their paths."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self._not_before = now - datetime.timedelta(minutes=5)
        self._not_after = now + VALIDITY
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("dops-test-cluster-ca"))
            .issuer_name(_name("dops-test-cluster-ca"))
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        self.ca.cert.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.ca.key, self._ca_key)
        self.service_account_key, self.service_account_pub = self._service_account_keys()

    def _service_account_keys(self) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private, public = self.directory / "sa.key", self.directory / "sa.pub"
        _write_key(private, key)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return private, public

    def issue(
        self,
        name: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: tuple[str, ...] = (),
        server_ips: tuple[str, ...] = (),
    ) -> KeyPair:
        """A leaf certificate signed by the cluster CA: a server certificate when SANs are given, else a client one."""
        key = ec.generate_private_key(ec.SECP256R1())
        server = bool(server_names or server_ips)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
        )
        if server:
            alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair

    # -- the node agent's credentials (additive: a running cluster's PKI issues them) --------------
    @classmethod
    def load(cls, directory: Path) -> ClusterPKI:
        """The PKI a running cluster wrote to `directory` (its CA signs further certificates)."""
        pki = cls.__new__(cls)
        pki.directory = directory
        now = datetime.datetime.now(datetime.UTC)
        pki._not_before = now - datetime.timedelta(minutes=5)
        pki._not_after = now + VALIDITY
        pki.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        pki._ca_cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
        key = serialization.load_pem_private_key(pki.ca.key.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        pki._ca_key = key
        pki.service_account_key, pki.service_account_pub = directory / "sa.key", directory / "sa.pub"
        return pki

    def issue_node(self, node: str, address: str = "127.0.0.1") -> tuple[KeyPair, KeyPair]:
        """A kubelet's two certificates: its client identity (`system:node:<node>` in `system:nodes`, which the
        Node authorizer and NodeRestriction act on) and its serving certificate for the kubelet API (SANs: the
        node name and `address`, the InternalIP the apiserver dials)."""
        client = self.issue(f"node-{node}-client", f"system:node:{node}", organization="system:nodes")
        serving = self.issue(
            f"node-{node}-serving",
            f"system:node:{node}",
            organization="system:nodes",
            server_names=(node,),
            server_ips=(address,),
        )
        return client, serving
