"""Calls cadrex as an outside system would: Python grpcio with an agency's certificate.

Usage: whoami.py HOST:PORT PKI_DIR [AGENCY-DIVISION]
Prints WhoAmI and AllowedMethods; exits non-zero if the identity is not the expected agency.
"""
import os
import subprocess
import sys
import tempfile

import grpc


def load_stubs(proto_root):
    out = tempfile.mkdtemp(prefix="cadrex-py-")
    protos = [os.path.join(proto_root, "cadrex", "v1", f) for f in os.listdir(os.path.join(proto_root, "cadrex", "v1"))]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out}", f"--grpc_python_out={out}", *protos],
        check=True,
    )
    sys.path.insert(0, out)
    from cadrex.v1 import system_pb2, system_pb2_grpc  # noqa: E402

    return system_pb2, system_pb2_grpc


def main():
    target, pki = sys.argv[1], sys.argv[2]
    who = sys.argv[3] if len(sys.argv) > 3 else "organization-360821"
    here = os.path.dirname(os.path.abspath(__file__))
    system_pb2, system_pb2_grpc = load_stubs(os.path.join(here, "..", "..", "proto"))
    read = lambda p: open(os.path.join(pki, p), "rb").read()  # noqa: E731
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.crt"),
        private_key=read(f"clients/{who}.key"),
        certificate_chain=read(f"clients/{who}.crt"),
    )
    host = target.rsplit(":", 1)[0]
    options = [("grpc.ssl_target_name_override", "localhost")] if host not in ("localhost",) else []
    with grpc.secure_channel(target, creds, options=options) as channel:
        stub = system_pb2_grpc.SystemServiceStub(channel)
        me = stub.WhoAmI(system_pb2.WhoAmIRequest(), timeout=10)
        print("principal:", me.principal)
        print("agency:   ", system_pb2.Agency.Name(me.agency))
        methods = stub.AllowedMethods(system_pb2.AllowedMethodsRequest(), timeout=10).methods
        print("methods:  ", ", ".join(m.rsplit("/", 1)[1] for m in methods))
    expected = "AGENCY_" + who.split("-")[0].upper()
    if system_pb2.Agency.Name(me.agency) != expected:
        print(f"expected {expected}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
