"""/v1/files: upload a labelled data set (validated at once), list, read, delete."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest

from app.api.deps import ServicesDep
from app.api.errors import InvalidInput
from app.api.schemas import PAGE_ERRORS, ErrorResponse
from app.api.schemas_jobs import FileDeleted, FileList, FileObject
from app.errors import PayloadTooLarge

router = APIRouter(prefix="/v1/files", tags=["files"])

# Room for the multipart framing and the small form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (404, 409, 413, 422)
}
UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "default": "fine-tune"},
                        "text_column": {"type": "string", "description": "name or 1-based"},
                        "label_column": {"type": "string", "description": "name or 1-based"},
                    },
                }
            }
        },
    }
}


@router.post(
    "", response_model=FileObject, status_code=201, responses=ERRORS, openapi_extra=UPLOAD_FORM
)
async def upload_file(request: Request, services: ServicesDep) -> FileObject:
    """Upload a CSV, TSV or JSONL data set as multipart field `file`.

    The file is parsed now: the answer names the columns used (given as `text_column` /
    `label_column`, or inferred), the row and label counts, and the problems found.
    """
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes")
    with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as body:
        # The body is counted while it streams in, so a chunked upload without a length
        # cannot fill the disk either.
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit + MULTIPART_OVERHEAD:
                raise PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes")
            body.write(chunk)
        body.seek(0)
        try:
            form = await _replay(request, body).form(max_files=1, max_fields=8)
        except HTTPException as exc:  # Starlette's 400 for a malformed multipart body
            raise InvalidInput("file", f"not a readable multipart form: {exc.detail}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("file", "send the data set as the multipart field 'file'")
        data = await upload.read()
        await form.close()
    if len(data) > limit:
        raise PayloadTooLarge(f"the file has {len(data)} bytes; the limit is {limit}")
    fields = {k: v for k, v in form.items() if isinstance(v, str) and v.strip()}
    record = await run_in_threadpool(
        services.jobs.files.add,
        data,
        filename=upload.filename or "upload",
        purpose=fields.get("purpose", "fine-tune"),
        text_column=fields.get("text_column"),
        label_column=fields.get("label_column"),
    )
    return FileObject.of(record)


def _replay(request: Request, body: Any) -> StarletteRequest:
    """A request whose body is read back from ``body`` (already counted and spooled)."""
    chunks = iter(lambda: body.read(1 << 16), b"")

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, b"")
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}

    return StarletteRequest(request.scope, receive)


@router.get("", response_model=FileList, responses=PAGE_ERRORS)
async def list_files(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> FileList:
    """Uploaded files, newest first; pass the last id as `after` for the next page."""
    records, more = await run_in_threadpool(services.jobs.files.page, limit, after)
    return FileList(data=[FileObject.of(r) for r in records], has_more=more)


@router.get("/{file_id}", response_model=FileObject, responses=ERRORS)
async def get_file(file_id: str, services: ServicesDep) -> FileObject:
    """One uploaded file."""
    return FileObject.of(await run_in_threadpool(services.jobs.files.get, file_id))


@router.delete("/{file_id}", response_model=FileDeleted, responses=ERRORS)
async def delete_file(file_id: str, services: ServicesDep) -> FileDeleted:
    """Delete a file (409 while an unfinished job uses it)."""
    record = await run_in_threadpool(services.jobs.files.delete, file_id)
    return FileDeleted(id=record.id)
