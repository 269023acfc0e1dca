"""A cap on request bodies other than uploads: a JSON request is small, or it is refused."""

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collect_api.errors import PayloadTooLarge

MAX_JSON_BYTES = 1024 * 1024


class BodyLimit:
    """413 for a non-multipart body over ``max_bytes``: at once when its Content-Length says
    so, else as soon as that many bytes have arrived. Multipart uploads have their own,
    larger limit (COLLECT_MAX_UPLOAD_BYTES), enforced while they are written to disk."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await _refuse(self.max_bytes, scope, receive, send)
            return
        # Read the body here, up to the limit, then hand it on whole: an error raised while
        # the app reads its body would not become a 413.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _refuse(self.max_bytes, scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _detail(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; send a smaller request"


async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    problem = PayloadTooLarge(_detail(limit)).problem()
    response = JSONResponse(problem, status_code=413, media_type="application/problem+json")
    await response(scope, receive, send)
