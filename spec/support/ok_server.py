# spec/support/ok_server.py: a loopback HTTP/1.1 server that reads and drops
# any request body and answers 200 "ok" (spec/support/ok_server.lua starts
# it for bench/upload and spec/core_request_spec). Over TLS when given a
# certificate and its key. Prints "PORT PID" once it listens.
import http.server, os, ssl, sys


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so neither side waits on Expect
    # Without TCP_NODELAY the answer leaves in two small writes and, on a
    # reused connection, the second waits out the client's 40 ms delayed ACK:
    # a benchmark would measure Python, not the client.
    disable_nagle_algorithm = True

    def answer(self):
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


# threads: clients served side by side are served the same way
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], os.getpid(), flush=True)
srv.serve_forever()
