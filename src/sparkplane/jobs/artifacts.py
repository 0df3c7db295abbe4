"""The artifact store: uploads and job outputs on the local disk, indexed in the database.

Layout under `artifacts_path`:

    uploads/<tenant>/<type>/<subfolder>/<name>          what clients uploaded
    outputs/<tenant>/<job id>/a<attempt>/<type>/<subfolder>/<file>   copied from devices

Every name that comes from a client or a device goes through `safe_join`, which
refuses absolute paths, `..`, NUL and anything that would resolve outside the
folder it is joined to. A job's outputs are shown to clients under the subfolder
`<job id>[/<device subfolder>]`, so files of different jobs (and devices) never
collide and `/view` finds the job from the subfolder alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sparkplane.db.models import ArtifactRow, JobRow, UploadRow, utcnow
from sparkplane.errors import BadRequest
from sparkplane.jobs.records import Artifact, Upload

TYPES = ("input", "output", "temp")
_CHUNK = 1024 * 1024


class UnsafePath(BadRequest):
    """A client-given name would escape its folder."""

    code = "unsafe_path"


def clean_parts(*names: str) -> list[str]:
    """Path segments of client-given names, refusing anything that could escape."""
    parts: list[str] = []
    for name in names:
        if not name:
            continue
        if "\x00" in name or "\\" in name or name.startswith("/") or ":" in name[:3]:
            raise UnsafePath(f"not a relative path: {name!r}")
        for part in PurePosixPath(name).parts:
            if part in ("..", "/") or part.startswith(".."):
                raise UnsafePath(f"path may not leave its folder: {name!r}")
            if part != ".":
                parts.append(part)
    return parts


def safe_join(base: Path, *names: str) -> Path:
    """`base` joined with client-given names; UnsafePath if the result leaves `base`."""
    path = base.joinpath(*clean_parts(*names))
    resolved_base = base.resolve()
    resolved = path.resolve()
    if resolved != resolved_base and resolved_base not in resolved.parents:
        raise UnsafePath("path may not leave its folder")
    return path


def tenant_dir(tenant_id: str) -> str:
    """The folder name of a tenant ('_' for the anonymous one)."""
    return tenant_id or "_"


def output_subfolder(job_id: str, device_subfolder: str) -> str:
    """The subfolder clients see for a job's output."""
    return f"{job_id}/{device_subfolder}" if device_subfolder else job_id


def split_output_subfolder(subfolder: str) -> tuple[str, str] | None:
    """(job id, device subfolder) from a client-facing subfolder, or None."""
    head, _, rest = subfolder.strip("/").partition("/")
    if len(head) == 32 and all(c in "0123456789abcdef" for c in head):
        return head, rest
    return None


class ArtifactStore:
    """Files on disk and their index rows."""

    def __init__(self, root: Path, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.root = root
        self._sessions = sessions
        root.mkdir(parents=True, exist_ok=True)

    # -- outputs -----------------------------------------------------------------

    def output_path(
        self, tenant_id: str, job_id: str, attempt: int, type_: str, subfolder: str, name: str
    ) -> Path:
        """Where one output file of one attempt lives."""
        base = self.root / "outputs" / tenant_dir(tenant_id) / job_id / f"a{attempt}"
        return safe_join(base, type_, subfolder, name)

    async def write_stream(self, path: Path, chunks: AsyncIterator[bytes]) -> int:
        """Write chunks to `path` (through a temporary file); returns the size."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        size = 0
        try:
            with partial.open("wb") as f:
                async for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def relative(self, path: Path) -> str:
        """A stored path, relative to the root (what the index keeps)."""
        return path.relative_to(self.root).as_posix()

    def absolute(self, relative: str) -> Path:
        """An index path back to a file under the root."""
        return safe_join(self.root, relative)

    def drop_attempt(self, tenant_id: str, job_id: str, attempt: int) -> None:
        """Remove the files of an attempt that did not count."""
        shutil.rmtree(
            self.root / "outputs" / tenant_dir(tenant_id) / job_id / f"a{attempt}",
            ignore_errors=True,
        )

    async def artifacts(self, job_id: str) -> list[Artifact]:
        """The recorded outputs of a job."""
        query = select(ArtifactRow).where(ArtifactRow.job_id == job_id).order_by(ArtifactRow.id)
        async with self._sessions() as session:
            return [
                Artifact(r.node_id, r.type, r.subfolder, r.filename, r.path, r.size)
                for r in await session.scalars(query)
            ]

    # -- uploads -----------------------------------------------------------------

    async def find_upload(
        self, tenant_id: str | None, type_: str, subfolder: str, name: str
    ) -> Upload | None:
        """An upload by its ComfyUI coordinates (any tenant's when `tenant_id` is None)."""
        query = select(UploadRow).where(
            UploadRow.type == type_, UploadRow.subfolder == subfolder, UploadRow.name == name
        )
        if tenant_id is not None:
            query = query.where(UploadRow.tenant_id == tenant_id)
        async with self._sessions() as session:
            row = (await session.scalars(query)).first()
        return _upload(row) if row is not None else None

    async def upload_names(self, tenant_id: str, type_: str = "input") -> list[str]:
        """What LoadImage may name: `name` or `subfolder/name` of the tenant's uploads."""
        query = select(UploadRow.subfolder, UploadRow.name).where(
            UploadRow.tenant_id == tenant_id, UploadRow.type == type_
        )
        async with self._sessions() as session:
            rows = await session.execute(query)
            return sorted(f"{s}/{n}" if s else n for s, n in rows)

    async def save_upload(
        self,
        tenant_id: str,
        key_id: str,
        type_: str,
        subfolder: str,
        filename: str,
        data_path: Path,
        overwrite: bool,
    ) -> Upload:
        """Store an uploaded file the way ComfyUI names it.

        The same name with the same bytes keeps the name; different bytes get
        "name (1).ext" unless `overwrite`. `data_path` is a temporary file, moved in.
        """
        if type_ not in TYPES:
            raise BadRequest(f"unknown upload type {type_!r}", param="type")
        clean_parts(subfolder, filename)
        digest, size = _hash_file(data_path)
        stem, ext = os.path.splitext(filename)
        name, i = filename, 1
        while True:
            existing = await self.find_upload(tenant_id, type_, subfolder, name)
            if existing is None or overwrite:
                break
            if existing.sha256 == digest:
                _remove(data_path)
                return existing
            name = f"{stem} ({i}){ext}"
            i += 1
        base = self.root / "uploads" / tenant_dir(tenant_id)
        path = safe_join(base, type_, subfolder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(data_path), path)
        row = UploadRow(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            key_id=key_id,
            type=type_,
            subfolder=subfolder,
            name=name,
            sha256=digest,
            size=size,
            path=self.relative(path),
            created_at=utcnow(),
        )
        async with self._sessions() as session:
            if overwrite:
                await session.execute(
                    delete(UploadRow).where(
                        UploadRow.tenant_id == tenant_id,
                        UploadRow.type == type_,
                        UploadRow.subfolder == subfolder,
                        UploadRow.name == name,
                    )
                )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # a concurrent upload of the same name won
                await session.rollback()
        found = await self.find_upload(tenant_id, type_, subfolder, name)
        assert found is not None
        return found

    # -- retention ---------------------------------------------------------------

    async def sweep(self, cutoff: datetime) -> tuple[int, int]:
        """Remove outputs and history of jobs that ended before `cutoff`, and uploads
        made before it; returns (jobs, uploads) removed. Job rows stay for accounting."""
        async with self._sessions() as session:
            old_jobs = list(
                await session.execute(
                    select(JobRow.id, JobRow.tenant_id).where(
                        JobRow.ended_at < cutoff, JobRow.result.is_not(None)
                    )
                )
            )
            old_uploads = list(
                await session.scalars(select(UploadRow).where(UploadRow.created_at < cutoff))
            )
            ids = [job_id for job_id, _ in old_jobs]
            if ids:
                await session.execute(delete(ArtifactRow).where(ArtifactRow.job_id.in_(ids)))
                await session.execute(update(JobRow).where(JobRow.id.in_(ids)).values(result=None))
            if old_uploads:
                await session.execute(
                    delete(UploadRow).where(UploadRow.id.in_([u.id for u in old_uploads]))
                )
            await session.commit()
        for job_id, tenant_id in old_jobs:
            shutil.rmtree(
                self.root / "outputs" / tenant_dir(tenant_id) / job_id, ignore_errors=True
            )
        for upload in old_uploads:
            _remove(self.root / upload.path)
        return len(old_jobs), len(old_uploads)


def _upload(row: UploadRow) -> Upload:
    return Upload(
        row.id,
        row.tenant_id,
        row.key_id,
        row.type,
        row.subfolder,
        row.name,
        row.sha256,
        row.size,
        row.path,
    )


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
