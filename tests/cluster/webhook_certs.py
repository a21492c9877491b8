"""A self-signed CA and a server certificate for the operator's webhook on loopback.

Test tooling (the chart generates its own, or cert-manager does): openssl from Debian,
written in the layout of a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt), which
is what `tradeplane-operator --webhook-cert-dir` reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory: Path, ip: str = "127.0.0.1") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=tradeplane-test-ca",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
        "-subj", f"/CN={ip}",
        cwd=directory,
    )  # fmt: skip
    (directory / "san.ext").write_text(
        f"subjectAltName=IP:{ip},DNS:localhost\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "tls.crt", "-extfile", "san.ext",
        cwd=directory,
    )  # fmt: skip
    return directory
