#!/usr/bin/env python3
"""Asks cadrex who the calling system is and what it may call, as an outside system would. Reads only.

Usage: whoami.py HOST:PORT PKI_DIR [AGENCY-DIVISION | none]

Prints WhoAmI and AllowedMethods for the certificate `PKI_DIR/clients/AGENCY-DIVISION.crt`
(default organization-360821) and exits non-zero if the server names another agency. With `none`
it connects without a client certificate and expects the handshake to be refused (UNAVAILABLE).
Every call names the officer the system acts for (CADREX_OFFICER, else an example name) in
`x-cadrex-officer`, UTF-8 percent-encoded as gRPC metadata must be ASCII.
"""
import sys

import grpc

from cadrex_example import OFFICER, channel, fail, load_stubs


def main():
    if len(sys.argv) < 3:
        fail(__doc__.strip())
    target, pki = sys.argv[1], sys.argv[2]
    who = sys.argv[3] if len(sys.argv) > 3 else "organization-360821"
    load_stubs()
    from cadrex.v1 import system_pb2, system_pb2_grpc

    with channel(target, pki, who) as ch:
        stub = system_pb2_grpc.SystemServiceStub(ch)
        try:
            me = stub.WhoAmI(system_pb2.WhoAmIRequest(), timeout=10, metadata=OFFICER)
        except grpc.RpcError as e:
            if who == "none" and e.code() == grpc.StatusCode.UNAVAILABLE:
                # grpcio's C core has printed TSI_DATA_CORRUPTED lines by now: that is the
                # server's TLS alert refusing a client without a certificate, as it should.
                print("no certificate:", e.code().name, "(refused, as expected)")
                return
            raise
        if who == "none":
            fail("a call without a client certificate succeeded")
        print("principal:", me.principal)
        print("agency:   ", system_pb2.Agency.Name(me.agency))
        methods = stub.AllowedMethods(system_pb2.AllowedMethodsRequest(), timeout=10, metadata=OFFICER).methods
        print("methods:  ", ", ".join(m.rsplit("/", 1)[1] for m in methods))
    expected = "AGENCY_" + who.split("-")[0].upper()
    if system_pb2.Agency.Name(me.agency) != expected:
        fail(f"expected {expected}")


if __name__ == "__main__":
    main()
