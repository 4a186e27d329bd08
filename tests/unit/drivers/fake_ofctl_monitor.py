"""A stand-in for ``ovs-ofctl --no-names monitor <bridge> watch: --unixctl=PATH`` (no switch):
prints the INITIAL events given as arguments, then serves the unixctl socket: ``ofctl/barrier``
prints a barrier reply (as the real one does once the switch answers), ``test/emit LINE``
prints LINE (a change made by "the switch"), ``test/barriers`` answers how many barriers
were asked for, ``test/exit`` ends the process, ``test/silent`` is not answered, anything
else is refused.  Replies come in two pieces."""

from __future__ import annotations

import json
import os
import socketserver
import sys
import threading

_printing = threading.Lock()
_barriers = [0]


def emit(line: str) -> None:
    with _printing:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        while chunk := self.request.recv(4096):
            buffer += chunk.decode()
            while buffer:
                try:
                    request, end = decoder.raw_decode(buffer)
                except ValueError:
                    break
                buffer = buffer[end:]
                method, params = request["method"], request["params"]
                reply = {"id": request["id"], "result": "", "error": None}
                if method == "ofctl/barrier":
                    _barriers[0] += 1
                    emit("OFPT_BARRIER_REPLY (OF1.5) (xid=0x9):")
                elif method == "test/barriers":
                    reply["result"] = str(_barriers[0])
                elif method == "test/emit":
                    emit(params[0])
                elif method == "test/exit":
                    os._exit(0)
                elif method == "test/silent":
                    continue
                else:
                    reply = {"id": request["id"], "result": None,
                             "error": f"{method!r} is not a valid command"}
                text = json.dumps(reply).encode()
                self.request.sendall(text[:5])
                self.request.sendall(text[5:])


def main(argv: list[str]) -> None:
    control = next(a.split("=", 1)[1] for a in argv if a.startswith("--unixctl="))
    emit("OFPST_FLOW_MONITOR reply (OF1.5) (xid=0x2):")
    for line in argv:
        if line.startswith(" event="):
            emit(line)
    socketserver.ThreadingUnixStreamServer(control, Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
