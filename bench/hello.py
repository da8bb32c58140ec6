"""The ceiling: a hello-world Flask app, served by the same gunicorn settings as ours.

``gunicorn -c deploy/gunicorn.conf.py bench.hello:app`` -- whatever our card page
reaches, it is measured against this on the same machine, load tool and worker model.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.route("/card")
def card() -> str:
    return "Hello, World!"
