"""Compressed responses, with or without nginx in front: Flask-Compress (brotli for
browsers, gzip for the rest), plus one adjustment so static files are compressed too.

Flask-Compress compresses a streamed response (``send_file``'s file wrapper) by swapping
in a generator, which leaves the file to be closed by the garbage collector. Static
files here are small and immutable per URL (``static_url`` adds ``?v=<hash>``), so they
are read into memory instead -- the file is closed when the response is -- and then
compressed like any other body, with a Content-Length.
"""

from __future__ import annotations

from flask import Flask, Response

from webapp.extensions import compress


def init_app(app: Flask) -> None:
    # First of all after_request hooks to be registered, so it runs last, on the final body.
    compress.init_app(app)
    compressible = frozenset(app.config["COMPRESS_MIMETYPES"])

    @app.after_request
    def read_static_files_into_memory(response: Response) -> Response:
        if (
            response.direct_passthrough
            and response.status_code == 200
            and response.mimetype in compressible
        ):
            response.direct_passthrough = False
            response.make_sequence()  # closes the file when the response is closed
        return response
