#!/usr/bin/env python3
"""A tiny loopback SMTP server for docs/walkthrough/run.sh: it accepts every
recipient except those of a "stuck" domain, which it defers with a 4xx at RCPT,
the way a large provider defers a sender it distrusts. While the file named by
--ok exists it accepts the stuck domain too. Messages are read and discarded."""
import argparse, os, socketserver

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--stuck", required=True)
ap.add_argument("--ok", required=True)
args = ap.parse_args()
DEFER = b"451 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to user complaints\r\n"


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 mx.stub.example ESMTP stub\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.strip().upper()
            if cmd.startswith(b"EHLO"):
                self.wfile.write(b"250-mx.stub.example\r\n250 8BITMIME\r\n")
            elif cmd.startswith(b"RCPT"):
                stuck = cmd.rstrip(b">").endswith(b"@" + args.stuck.upper().encode())
                if stuck and not os.path.exists(args.ok):
                    self.wfile.write(DEFER)
                else:
                    self.wfile.write(b"250 2.1.5 ok\r\n")
            elif cmd == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.wfile.write(b"250 2.0.0 accepted\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 2.0.0 bye\r\n")
                return
            else:  # HELO, MAIL, RSET, NOOP
                self.wfile.write(b"250 2.0.0 ok\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


with Server(("127.0.0.1", 0), Handler) as srv:
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()
