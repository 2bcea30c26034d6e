"""Paths and URIs for outputs: local folders or any fsspec URI (s3://, gs://, ...).

Workers never assume they share the driver's disk: everything a worker writes goes through
these helpers to the output location, which on a cluster is shared storage.
Writes are atomic: bytes go to a temporary name in the same folder, then are renamed.
Before any work a run checks that it can write at all (`check_writable`); a disk that fills or
turns read-only mid-run ends the run with one sentence (`output_errors`), not a traceback.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager

import fsspec
from fsspec.implementations.local import LocalFileSystem

from peakclips.errors import InputError, OutputError, machine_error

TEMP_MARK = ".tmp-"
"""Temporaries are named `<final name>.tmp-<id>`: a killed writer's leftovers are found by it."""

PROBE_BYTES = 1 << 20  # what the write probe writes: a full disk refuses it, a nearly full one too


def fs_and_path(uri: str):
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def exists(uri: str) -> bool:
    fs, path = fs_and_path(uri)
    return fs.exists(path)


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    """A whole file; with `max_bytes`, InputError for a larger one (readers of files they did
    not write bound what they load)."""
    fs, path = fs_and_path(uri)
    if max_bytes is not None and (size := fs.size(path)) > max_bytes:
        raise InputError(f"{uri} holds {size} bytes, more than the {max_bytes} such a file may hold")
    return fs.cat_file(path)


def write_atomic(uri: str, data: bytes) -> None:
    """Write under a temporary name, then rename: readers never see a partial file under `uri`."""
    fs, path = fs_and_path(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}{TEMP_MARK}{uuid.uuid4().hex[:8]}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def upload_atomic(local_path: str, uri: str) -> None:
    """Move a finished local file to `uri` atomically (rename locally, put + rename remotely)."""
    fs, path = fs_and_path(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}{TEMP_MARK}{uuid.uuid4().hex[:8]}"
    fs.put_file(local_path, tmp)
    fs.mv(tmp, path)


def remove(uri: str, recursive: bool = False) -> None:
    fs, path = fs_and_path(uri)
    if isinstance(fs, LocalFileSystem):
        # Plain os calls: fsspec's local rm consults os.getcwd(), which raises inside a Ray job
        # whose working_dir copy has already been cleaned up.
        if os.path.isdir(path) and recursive:
            shutil.rmtree(path, ignore_errors=False)
        elif os.path.lexists(path):
            os.remove(path)
        return
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def listdir(uri: str) -> list[str]:
    """Base names in a folder ([] when it does not exist)."""
    fs, path = fs_and_path(uri)
    if not fs.exists(path):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def check_writable(*uris: str) -> None:
    """Fail in seconds, with one sentence, when a run could not write its results: the output is
    a file, or read-only, or full (a 1 MiB probe file is written and removed)."""
    for uri in uris:
        fs, path = fs_and_path(uri)
        if fs.exists(path) and not fs.isdir(path):
            raise OutputError(f"{uri} is a file, not a folder: give --output a folder")
        probe = f"{path.rstrip('/')}/.peakclips-write-probe-{uuid.uuid4().hex[:8]}"
        created = _first_missing(fs, path.rstrip("/"))  # removed again: a run that stops leaves nothing
        try:
            fs.makedirs(path, exist_ok=True)
            with fs.open(probe, "wb") as f:
                f.write(bytes(PROBE_BYTES))
        except OSError as e:
            raise OutputError(f"cannot write to {uri}: {e.strerror or type(e).__name__}; "
                              "choose another --output or free space there") from None
        finally:
            try:
                if fs.exists(probe):
                    fs.rm(probe)
                if created and fs.exists(created):
                    fs.rm(created, recursive=True)
            except OSError:
                pass


def _first_missing(fs, path: str) -> str | None:
    """The outermost folder of `path` that does not exist yet (None when `path` exists)."""
    missing = None
    while path and not fs.exists(path):
        missing, parent = path, path.rsplit("/", 1)[0]
        if parent == path:
            break
        path = parent
    return missing


@contextmanager
def output_errors(output: str):
    """A full or read-only disk met anywhere in a run (here or on a worker, wrapped by Ray) as one
    `OutputError` sentence; complete shards and staged videos stay for the re-run."""
    try:
        yield
    except Exception as e:
        cause = machine_error(e)
        if cause is None and not isinstance(e, OutputError):
            raise
        # Other tasks met the same disk; Ray would print each of their errors at exit.
        os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
        if cause is None:
            raise
        raise storage_fault_error(output, os.strerror(cause.errno)) from None


def storage_fault_error(output: str, what: str) -> OutputError:
    return OutputError(f"{what} while writing the run's files ({output}, or its scratch folder): free space "
                       "(or make it writable) and re-run; complete shards and staged videos are kept")


@contextmanager
def build_dir(output: str, name: str):
    """A local folder to assemble files in before they are published under `output`, removed
    afterwards. A local output builds in `_staging/<name>.build` (the same file system, and a
    killed run leaves nothing in the system temp folder: the next build of `name` removes it);
    a remote one in the system temp folder under this process's id, where the next build on
    this machine removes the folders of processes that are gone."""
    fs, path = fs_and_path(output)
    if isinstance(fs, LocalFileSystem):
        folder = os.path.join(path, "_staging", f"{name}.build")
        shutil.rmtree(folder, ignore_errors=True)  # a killed build's
        os.makedirs(folder)
    else:
        _remove_dead_builds()
        folder = tempfile.mkdtemp(prefix=f"peakclips-build-{os.getpid()}-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_dead_builds() -> None:
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        parts = name.split("-")
        if name.startswith("peakclips-build-") and len(parts) > 3 and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            except PermissionError:
                pass  # alive, another user's
