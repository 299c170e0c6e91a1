"""The baseline of bench.ack_path: a bare Flask endpoint that answers 200 to the same requests."""

from flask import Flask, Response, jsonify


def create() -> Flask:
    app = Flask("bare")

    @app.post("/hubspot/webhooks")
    def webhooks() -> Response:
        return jsonify(accepted=1, duplicates=0)

    return app
