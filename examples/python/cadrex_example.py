"""What every example shares: generated stubs, an agency's mutual-TLS channel and the officer header.

The stubs are compiled from proto/ at start with grpcio-tools, so the examples always match the
server they ship with. Certificates come from a development PKI directory (`cadrex-data/pki`):
`ca.crt` and `clients/{agency}-{division}.crt|.key`.
"""
import os
import subprocess
import sys
import tempfile
import urllib.parse

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "..", "proto")

# quote() keeps only RFC 3986 unreserved characters with safe="": the encoding the server decodes.
OFFICER = [("x-cadrex-officer", urllib.parse.quote(os.environ.get("CADREX_OFFICER", "示例经办人"), safe=""))]


def load_stubs():
    """Compiles every proto of cadrex.v1 into a scratch directory and puts it on sys.path."""
    out = tempfile.mkdtemp(prefix="cadrex-py-")
    v1 = os.path.join(PROTO_ROOT, "cadrex", "v1")
    protos = [os.path.join(v1, f) for f in sorted(os.listdir(v1)) if f.endswith(".proto")]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", *protos],
        check=True,
    )
    sys.path.insert(0, out)


def target_options(target):
    """The development server certificate names `localhost` and `127.0.0.1`; grpcio checks the
    name it dialled, so an address by number is checked against `localhost`."""
    host = target.rsplit(":", 1)[0]
    return [("grpc.ssl_target_name_override", "localhost")] if host != "localhost" else []


def channel(target, pki, who):
    """A channel presenting the certificate of `who` (e.g. `organization-360821`), or none for `none`."""
    read = lambda p: open(os.path.join(pki, p), "rb").read()  # noqa: E731
    if who == "none":
        creds = grpc.ssl_channel_credentials(root_certificates=read("ca.crt"))
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=read("ca.crt"),
            private_key=read(f"clients/{who}.key"),
            certificate_chain=read(f"clients/{who}.crt"),
        )
    return grpc.secure_channel(target, creds, options=target_options(target))


def id_number(first17):
    """A 公民身份号码 with its GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


def credit_code(first17):
    """A 统一社会信用代码 with its GB 32100 check character."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(chars.index(c) * w for c, w in zip(first17, weights))
    return first17 + chars[(31 - total % 31) % 31]


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)
