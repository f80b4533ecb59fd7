"""A stand-in Confluent Schema Registry speaking exactly the two calls eddy
makes: POST /subjects/{subject}/versions and GET /schemas/ids/{id}. No
registry server is packaged for Debian; this keeps the test self-contained."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self):
        self.schemas = {}    # id -> schema text
        self.subjects = {}   # subject -> id
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                    return self.reply(404, {"error_code": 404, "message": "not found"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["schema"]
                ids = [i for i, s in registry.schemas.items() if s == text]
                sid = ids[0] if ids else len(registry.schemas) + 1
                registry.schemas[sid] = text
                registry.subjects[parts[1]] = sid
                self.reply(200, {"id": sid})

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and \
                        int(parts[2]) in registry.schemas:
                    return self.reply(200, {"schema": registry.schemas[int(parts[2])]})
                self.reply(404, {"error_code": 40403, "message": "Schema not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
