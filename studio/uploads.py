"""Receiving an upload: the multipart body is parsed while it streams in (python-multipart), the file part is
written to a temporary file inside the data directory and counted as it arrives, so a body past the limit
stops at the limit (chunked or not) and its temporary file is removed on every path.

```python
async with receive_upload(request, tmp_dir=..., max_bytes=...) as upload:
    data = upload.path.read_bytes()   # at most max_bytes
```
"""

from __future__ import annotations

import os
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from studio.service import ServiceError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024  # the small text fields beside the file (`kind`)
MAX_PARTS = 8


@dataclass
class ReceivedUpload:
    """The uploaded file (a temporary file, removed when the `receive_upload` block ends; `filename` None: the form
    had no file part, where it is optional) and the form fields."""

    path: Path
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Parts:
    """Collects the parts the parser reports (to its `on_*` callbacks): the file into `sink`, small fields into
    memory."""

    sink: BinaryIO
    max_bytes: int
    file_field: str
    max_field_bytes: int
    max_parts: int
    size: int = 0
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    parts: int = 0
    _header_name: bytes = b""
    _header_value: bytes = b""
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _name: str | None = None
    _is_file: bool = False
    _value: bytearray = field(default_factory=bytearray)

    def callbacks(self) -> dict[str, Callable]:
        return {name: getattr(self, name) for name in dir(self) if name.startswith("on_")}

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise ServiceError(422, f"the form has more than {self.max_parts} parts", self.file_field)
        self._headers, self._name, self._is_file, self._value = {}, None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = self._name == self.file_field
        if self._is_file:
            if self.filename is not None:
                raise ServiceError(422, "send one file per upload", self.file_field)
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace") or "upload"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise ServiceError(413, f"the upload is larger than the limit of {self.max_bytes} bytes",
                                   self.file_field)
            self.sink.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > self.max_field_bytes:
                raise ServiceError(422, f"form field {self._name!r} is longer than {self.max_field_bytes} bytes",
                                   self._name)

    def on_part_end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")


@asynccontextmanager
async def receive_upload(request: Request, *, tmp_dir: Path, max_bytes: int, file_field: str = FILE_FIELD,
                         required: bool = True, max_field_bytes: int = MAX_FIELD_BYTES,
                         max_parts: int = MAX_PARTS) -> AsyncIterator[ReceivedUpload]:
    """Stream a `multipart/form-data` body with a file part named `file_field` into a temporary file under
    `tmp_dir` (the file may be left out unless `required`); text fields of at most `max_field_bytes` each, at most
    `max_parts` parts in all.

    Raises `ServiceError` 413 as soon as the file passes `max_bytes`, 422 for a body that is not such a form.
    The temporary file is removed when the block ends, whatever happens.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ServiceError(422, f"this is a multipart/form-data body (with a {file_field!r} file part)", file_field)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as sink:
            parts = _Parts(sink, max_bytes, file_field, max_field_bytes, max_parts)
            parser = MultipartParser(boundary, parts.callbacks())
            try:
                async for chunk in request.stream():
                    if chunk:
                        parser.write(chunk)
                parser.finalize()
            except MultipartParseError:
                raise ServiceError(422, "the body is not a well-formed multipart/form-data body", file_field) from None
        if parts.filename is None and required:
            raise ServiceError(422, f"{file_field} is required (a multipart file part named {file_field!r})",
                               file_field)
        yield ReceivedUpload(path=path, filename=parts.filename, fields=parts.fields)
    finally:
        path.unlink(missing_ok=True)
