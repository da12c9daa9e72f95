#!/usr/bin/env python3
"""Calls cadrex as an outside system would: Python grpcio with an agency's certificate.

Usage: whoami.py HOST:PORT PKI_DIR [AGENCY-DIVISION]
Prints WhoAmI and AllowedMethods; exits non-zero if the identity is not the expected agency.
Every call names the officer the system acts for (CADREX_OFFICER, else an example name) in
`x-cadrex-officer`, UTF-8 percent-encoded as gRPC metadata must be ASCII.
"""
import os
import subprocess
import sys
import tempfile
import urllib.parse

import grpc


# quote() keeps only RFC 3986 unreserved characters with safe="": the encoding the server decodes.
OFFICER = [("x-cadrex-officer", urllib.parse.quote(os.environ.get("CADREX_OFFICER", "示例经办人"), safe=""))]


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


def stubs():
    """The other generated modules, once load_stubs has put them on the path."""
    from cadrex.v1 import cadres_pb2, cadres_pb2_grpc, changes_pb2, changes_pb2_grpc, dossier_pb2, dossier_pb2_grpc  # noqa: E402

    return cadres_pb2, cadres_pb2_grpc, changes_pb2, changes_pb2_grpc, dossier_pb2, dossier_pb2_grpc


def id_number(first17):
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


def credit_code(first17):
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(chars.index(c) * w for c, w in zip(first17, weights))
    return first17 + chars[(31 - total % 31) % 31]


def refused_without_certificate(target, pki, system_pb2, system_pb2_grpc):
    """A client without a certificate fails the handshake: grpcio reports UNAVAILABLE."""
    creds = grpc.ssl_channel_credentials(root_certificates=open(os.path.join(pki, "ca.crt"), "rb").read())
    with grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        try:
            system_pb2_grpc.SystemServiceStub(channel).WhoAmI(system_pb2.WhoAmIRequest(), timeout=10)
        except grpc.RpcError as e:
            print("no certificate:", e.code().name)
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                sys.exit(1)
            return
    print("a call without a certificate succeeded", file=sys.stderr)
    sys.exit(1)


def main():
    target, pki = sys.argv[1], sys.argv[2]
    who = sys.argv[3] if len(sys.argv) > 3 else "organization-360821"
    here = os.path.dirname(os.path.abspath(__file__))
    system_pb2, system_pb2_grpc = load_stubs(os.path.join(here, "..", "..", "proto"))
    if who == "none":
        refused_without_certificate(target, pki, system_pb2, system_pb2_grpc)
        return
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
        me = stub.WhoAmI(system_pb2.WhoAmIRequest(), timeout=10, metadata=OFFICER)
        print("principal:", me.principal)
        print("agency:   ", system_pb2.Agency.Name(me.agency))
        methods = stub.AllowedMethods(system_pb2.AllowedMethodsRequest(), timeout=10, metadata=OFFICER).methods
        print("methods:  ", ", ".join(m.rsplit("/", 1)[1] for m in methods))
        if who.startswith("organization"):
            exercise(channel)
    expected = "AGENCY_" + who.split("-")[0].upper()
    if system_pb2.Agency.Name(me.agency) != expected:
        print(f"expected {expected}", file=sys.stderr)
        sys.exit(1)


def exercise(channel):
    """Registers a cadre, reads its dossier and pulls the change feed, as an organization system would."""
    cadres_pb2, cadres_pb2_grpc, changes_pb2, changes_pb2_grpc, dossier_pb2, dossier_pb2_grpc = stubs()
    cadre = cadres_pb2_grpc.CadreServiceStub(channel).CreateCadre(
        cadres_pb2.CreateCadreRequest(
            cadre=cadres_pb2.Cadre(
                display_name="张三",
                gender=cadres_pb2.GENDER_MALE,
                id_number=id_number("36082119750312001"),
                managing_division="360821",
                posts=[
                    cadres_pb2.Post(
                        unit_name="某县财政局", unit_credit_code=credit_code("91360800MA35X1234"),
                        title="局长", rank="正科级", unit_head=True, start_date="2021-03-01",
                    )
                ],
            ),
            request_id="python-example-1",
        ),
        timeout=10,
        metadata=OFFICER,
    )
    print("created:  ", cadre.name)
    dossier = dossier_pb2_grpc.DossierServiceStub(channel).GetCadreDossier(
        dossier_pb2.GetCadreDossierRequest(cadre=cadre.name, purpose=dossier_pb2.PURPOSE_ROUTINE_SUPERVISION),
        timeout=10,
        metadata=OFFICER,
    )
    print("dossier:  ", dossier.cadre.display_name, "sections", len(dossier.sections))
    page = changes_pb2_grpc.ChangeFeedServiceStub(channel).ListChanges(
        changes_pb2.ListChangesRequest(), timeout=10, metadata=OFFICER
    )
    print("changes:  ", [e.resource for e in page.events], "next cursor", page.next_cursor[:16] + "...")
    if not any(e.resource == cadre.name for e in page.events):
        print("the new cadre is missing from the feed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
