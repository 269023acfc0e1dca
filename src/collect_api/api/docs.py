"""The API as documented: what each operation may refuse and why, the OpenAPI document, and
the `/docs` (Swagger UI) and `/redoc` pages, served from vendored files so that they work with
no network.

An operation declares its refusals with :func:`documented`: each refusal is a status, the
condition that causes it and an example problem body. The same declaration gives the
operation's description (which lists when each status happens) and its responses (each
referencing the one ``Problem`` schema under ``application/problem+json``), so the two cannot
drift apart. FastAPI adds a 422 with its own validation schema to every operation that has
parameters; :func:`openapi_document` removes it where no validation can fail, since the app
renders validation errors as problems too.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from collect_api.api.schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
REDOC = "/static/vendor/redoc-2.5.4"
FAVICON = "/static/favicon.svg"
# The pages may load nothing from elsewhere: with no network they work the same. (ReDoc's
# sidebar would show a logo from its CDN; the browser refuses to fetch it.)
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'self'"
)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    416: "Range not satisfiable",
    422: "Unprocessable content",
    503: "Service unavailable",
    507: "Insufficient storage",
}
EXAMPLE_JOB_ID = "01m8115b00jfbms03498rncvpd"


@dataclass(frozen=True)
class Refusal:
    """One way an operation can fail: its status, when it happens, an example body."""

    status: int
    when: str
    example: dict[str, Any] = field(hash=False)


def refusal(status: int, when: str, detail: str, *, title: str = "", **extra: Any) -> Refusal:
    example = {
        "type": "about:blank",
        "title": title or _TITLES[status],
        "status": status,
        "detail": detail,
        **extra,
    }
    return Refusal(status, when, example)


def documented(
    summary: str,
    description: str,
    *refusals: Refusal,
    ok: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``summary``, ``description`` and ``responses`` arguments of a route: its success
    responses ``ok`` and one problem response per status of ``refusals``, described by the
    conditions that cause it (several refusals may share a status)."""
    by_status: dict[int, list[Refusal]] = {}
    for r in refusals:
        by_status.setdefault(r.status, []).append(r)
    responses: dict[int | str, dict[str, Any]] = dict(ok.items()) if ok else {}
    lines = []
    for status in sorted(by_status):
        causes = by_status[status]
        when = "; or ".join(r.when for r in causes)
        lines.append(f"- **{status}** when {when}.")
        examples = {
            f"{status}-{i}": {"summary": r.when, "value": r.example} for i, r in enumerate(causes)
        }
        responses[status] = {
            "description": f"{_TITLES[status]}: when {when}.",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF, "examples": examples}},
        }
    text = description.strip()
    if lines:
        text += "\n\n**Errors** (each a `Problem`, as `application/problem+json`):\n\n"
        text += "\n".join(lines)
    return {"summary": summary, "description": text, "responses": responses}


def accepted(what: str) -> dict[int, dict[str, Any]]:
    """The 202 of an operation that queues a job, with its ``Location`` header."""
    return {
        202: {
            "description": f"{what} is queued: the body is the job, as `GET /jobs/{{id}}`.",
            "headers": {
                "Location": {
                    "description": "the job's URL, `/jobs/{id}`: follow it to watch the job",
                    "required": True,
                    "schema": {"type": "string", "example": f"/jobs/{EXAMPLE_JOB_ID}"},
                }
            },
        }
    }


# Refusals that many operations share.
UNAUTHORIZED = refusal(
    401,
    "API keys are configured and the request sends none, or one that is not known",
    "An API key is required: send the header 'Authorization: Bearer <key>'.",
)
DATABASE_BUSY = refusal(
    503,
    "the database cannot be reached or stays busy",
    "The database is busy; try again.",
)
DISK_FULL = refusal(
    507,
    "the server's disk is full (nothing was changed)",
    "The server's disk is full, so nothing was changed; try again once space is freed.",
)
JOB_NOT_FOUND = refusal(
    404,
    "no job of yours has this id",
    f"No job with id '{EXAMPLE_JOB_ID}' exists. List your jobs with GET /jobs.",
    job_id=EXAMPLE_JOB_ID,
)
DATASET_NOT_FOUND = refusal(
    404,
    "you have no dataset of this name",
    "No dataset named 'responses' exists. List datasets with GET /datasets.",
    dataset="responses",
)
BAD_PAGE = refusal(
    422,
    "a query parameter has a value it does not allow, such as a `limit` above 1000 or an "
    "`after` that is no page's `next`",
    "limit: Input should be less than or equal to 1000",
    errors=[{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000"}],
)
JSON_TOO_LARGE = refusal(
    413,
    "the body is larger than 1 MiB",
    "the request body is larger than 1048576 bytes; send a smaller request",
)
UPLOAD_TOO_LARGE = refusal(
    413,
    "the file is larger than the upload limit (`COLLECT_MAX_UPLOAD_BYTES`)",
    "the file is larger than the 10737418240-byte upload limit (COLLECT_MAX_UPLOAD_BYTES); "
    "split it or raise the limit",
)
BAD_FORM = refusal(
    422,
    "the body is not `multipart/form-data` with a `file` part, or a form field has a value "
    "it does not allow (the problem's `field` names it)",
    "form field 'on_error' must be one of abort, skip; got 'ignore'",
    field="on_error",
)
BAD_CSV = refusal(
    422,
    "the file is not CSV text in the given encoding, is empty, or its header is not usable "
    "(the problem's `line` and `column` say where)",
    "line 1, column 'email': column name 'email' appears more than once in the header; "
    "column names must be unique",
    title="Bad CSV",
    code="bad_header",
    line=1,
    column="email",
)


def openapi_document(app: FastAPI, *, kinds: list[str]) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document, with the one ``Problem`` schema, without the
    validation responses FastAPI adds where no validation can fail, event streams described
    by their events alone, and with the job kinds
    the service runs (``kinds``) as the values a job's ``kind`` may take."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        fastapi_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                content = responses.get("422", {}).get("content", {})
                if content.get("application/json", {}).get("schema") == fastapi_422:
                    del responses["422"]
                # An event stream is described by its events (``itemSchema``), not as the
                # one string FastAPI takes a streamed response for.
                stream = responses.get("200", {}).get("content", {}).get("text/event-stream")
                if stream and "itemSchema" in stream:
                    stream.pop("schema", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        schemas["JobPublic"]["properties"]["kind"]["enum"] = kinds
        for parameter in document["paths"]["/jobs"]["get"]["parameters"]:
            if parameter["name"] == "kind":
                for choice in parameter["schema"]["anyOf"]:
                    if choice.get("type") == "string":
                        choice["enum"] = kinds
        app.openapi_schema = document
        return document

    return build


def add_docs_pages(app: FastAPI) -> None:
    """``/docs`` and ``/redoc``, from the files under ``static/vendor``."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=FAVICON,
            swagger_ui_parameters={
                # No badge that asks validator.swagger.io about the document.
                "validatorUrl": None,
                "tryItOutEnabled": False,
                "displayRequestDuration": True,
                "docExpansion": "list",
                "defaultModelsExpandDepth": 0,
            },
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API reference",
            redoc_js_url=f"{REDOC}/redoc.standalone.js",
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page
