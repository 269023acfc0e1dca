"""Receive a multipart upload straight into a file, never holding it whole in memory.

The request body is parsed as it arrives (python-multipart's streaming parser); the ``file``
part is written under the data dir as it comes, and the upload stops with ``UploadTooLarge``
the moment it passes the limit, removing the partial file.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from collect_api.kinds.csvsource import Upload
from collect_api.storage.files import remove

MAX_FIELD_BYTES = 64 * 1024
WRITE_BYTES = 1 << 20


class UploadProblem(Exception):
    """The request is not a usable multipart upload."""


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the {limit}-byte limit")
        self.limit = limit


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)


async def receive_upload(
    body: AsyncIterator[bytes],
    *,
    content_type: str,
    dest: Path,
    max_bytes: int,
    file_field: str = "file",
    on_file: Callable[[Upload], None] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> Upload:
    """Parse the multipart ``body``; the ``file_field`` part goes to ``dest``.

    ``on_file`` is called as the file part begins, with the form fields before it;
    ``on_written`` each time more of the file is written to ``dest`` and flushed to it,
    with the bytes written so far, for work that reads the file while it arrives."""
    mime, options = parse_options_header(content_type or "")
    if mime != b"multipart/form-data" or b"boundary" not in options:
        raise UploadProblem("send the file as multipart/form-data (curl: -F file=@responses.csv)")
    upload = Upload()
    part = _Part()
    header_field = bytearray()
    header_value = bytearray()
    file_data: list[bytes] = []

    def buffered() -> int:
        return sum(map(len, file_data))

    problems: list[str] = []

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        name = disposition.get(b"name")
        part.name = name.decode("utf-8", "replace") if name is not None else None
        filename = disposition.get(b"filename")
        part.filename = filename.decode("utf-8", "replace") if filename is not None else None
        if part.name == file_field:
            upload.received_file = True
            upload.filename = part.filename
            if on_file is not None:
                on_file(upload)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.name == file_field:
            upload.size += end - start
            if upload.size <= max_bytes:
                file_data.append(data[start:end])
        elif len(part.value) + end - start > MAX_FIELD_BYTES:
            problems.append(f"form field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
        else:
            part.value.extend(data[start:end])

    def on_part_end() -> None:
        if part.name is not None and part.name != file_field:
            upload.fields[part.name] = part.value.decode("utf-8", "replace")

    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        async with aiofiles.open(dest, "wb") as out:

            async def write() -> None:
                nonlocal written
                data = b"".join(file_data)
                file_data.clear()
                await out.write(data)
                written += len(data)
                if on_written is not None:
                    await out.flush()
                    on_written(written)

            async for chunk in body:
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise UploadProblem(f"the multipart body is malformed: {exc}") from None
                if upload.size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                if problems:
                    raise UploadProblem(problems[0])
                if buffered() >= WRITE_BYTES:  # one thread hop per MiB, not per packet
                    await write()
            parser.finalize()
            if file_data:
                await write()
    except BaseException:
        await discard_file(dest)
        raise
    return upload


async def discard_file(path: Path) -> None:
    """Delete a file received, or partly received, if it is there."""
    await asyncio.to_thread(remove, path)
