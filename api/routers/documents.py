"""``GET /v1/documents/{id}``: a document's index status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import DbDep, TenantDep
from api.errors import NotFoundError, ValidationFailedError
from api.schemas import ERROR_RESPONSES, DocumentPublic

router = APIRouter(prefix="/v1", tags=["documents"])


@router.get(
    # A path parameter: document ids may hold "/" (sent as %2F, which the router sees decoded).
    "/documents/{document_id:path}",
    response_model=DocumentPublic,
    responses={**ERROR_RESPONSES, 404: {"description": "No such indexed document for this tenant"}},
)
async def get_document(
    document_id: Annotated[str, Path(min_length=1, max_length=512, pattern=r"^[^\x00]+$")],
    principal: TenantDep,
    connection: DbDep,
) -> DocumentPublic:
    """How the document is indexed now (the latest pipeline that indexed it); 404 if it is not, or is deleted."""
    if "\x00" in document_id:
        raise ValidationFailedError("path.document_id: NUL characters are not allowed")
    row = await (
        await connection.execute(
            "SELECT document_id, chunk_count, model, indexed_at FROM tidewire_document_state "
            "WHERE tenant_id = %s AND document_id = %s AND NOT deleted ORDER BY indexed_at DESC LIMIT 1",
            (principal.tenant_id, document_id),
        )
    ).fetchone()
    if row is None:
        raise NotFoundError(f"document {document_id!r} is not indexed")
    return DocumentPublic(
        document_id=row["document_id"],
        chunks=row["chunk_count"],
        model=row["model"],
        indexed_at=row["indexed_at"],
    )
