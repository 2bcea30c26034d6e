"""Paths and URIs for outputs: local folders or any fsspec URI (s3://, gs://, hf://, ...).

Workers never assume they share the driver's disk: everything a worker writes goes through
these helpers to the output location, which on a cluster is shared storage.
Writes are atomic, in the way each kind of storage allows:
  - a local (or other file-system) path: bytes go to a temporary name `<final>.tmp-<id>` in the
    same folder, then are renamed over the final name;
  - an object store (`OBJECT_STORES`): the object is written under its final name in one upload.
    An object store shows an object only once its upload is complete (a single PUT, or a
    multipart upload's completion), and it has no rename (fsspec's `mv` is a copy and a delete,
    which a kill can leave half done), so the temporary-name dance would only add a copy and
    leftovers. A killed multipart upload leaves no object, only parts that `abort_uploads` removes.
Credentials come from each backend's own standard sources (AWS_* variables and instance roles,
GOOGLE_APPLICATION_CREDENTIALS, the Hugging Face token); `configure` passes a run's non-secret
`storage_options` (endpoint, region, requester-pays) to fsspec, and refuses secret-looking keys.
Before any work a run checks that it can write at all (`check_writable`); a disk that fills or
turns read-only mid-run ends the run with one sentence (`output_errors`), not a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
from fsspec.implementations.local import LocalFileSystem

from peakclips.errors import InputError, OutputError, machine_error, user_error

TEMP_MARK = ".tmp-"
"""Temporaries are named `<final name>.tmp-<id>`: a killed writer's leftovers are found by it."""

PROBE_BYTES = 1 << 20  # what the write probe writes: a full disk refuses it, a nearly full one too

OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "hf")
"""Protocols of object stores: whole-object uploads, no rename (see the module docstring). They
are also the only remote protocols ingest reads videos from (under `ingest.allowed_prefixes`)."""


def fs_and_path(uri: str):
    # No listing cache: other processes (Ray workers, another job) write to the same folders, and
    # a cached listing would hide what they wrote from the driver.
    fs, path = fsspec.core.url_to_fs(uri, use_listings_cache=False)
    return fs, path


def protocol(uri: str) -> str:
    """The URI's scheme, lower-case ("" for a plain path)."""
    head, sep, _ = uri.partition("://")
    return head.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", head) else ""


def _protocols(fs) -> tuple[str, ...]:
    return tuple(fs.protocol) if isinstance(fs.protocol, tuple | list) else (fs.protocol,)


def is_object_store(fs) -> bool:
    return any(p in OBJECT_STORES for p in _protocols(fs))


def check_object_uri(uri: str) -> str:
    """An object-storage URI as ingest reads it, with its protocol lower-cased; ValueError for
    anything else: a protocol not in OBJECT_STORES, no bucket, a path segment that is empty, `.`
    or `..` (stores that resolve them would leave a prefix), a query or fragment, fsspec's `::`
    chaining (`s3://b/x::file:///etc/passwd` reads the second URL), a control character."""
    proto = protocol(uri)
    if proto not in OBJECT_STORES:
        raise ValueError(f"not an object-storage URI ({', '.join(p + '://' for p in OBJECT_STORES)})")
    rest = uri.split("://", 1)[1]
    if any(ord(c) < 32 or ord(c) == 127 for c in uri) or "::" in uri:
        raise ValueError("a control character or '::' in the URI")
    if "?" in rest or "#" in rest:
        raise ValueError("a query or fragment in an object-storage URI")
    bucket, _, key = rest.partition("/")
    if not bucket or "@" in bucket or ":" in bucket:
        raise ValueError("no bucket, or a user name or port where the bucket should be")
    if key and any(part in ("", ".", "..") for part in key.removesuffix("/").split("/")):
        raise ValueError("an empty, '.' or '..' path segment")
    return f"{proto}://{rest}"


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
    """Readers never see a partial file under `uri`: a temporary name, then a rename (one upload
    on an object store)."""
    fs, path = fs_and_path(uri)
    if is_object_store(fs):
        fs.pipe_file(path, data)
        return
    tmp = _temporary(fs, path)
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def upload_atomic(local_path: str, uri: str) -> None:
    """Publish a finished local file under `uri` atomically (put + rename; one upload on an
    object store)."""
    fs, path = fs_and_path(uri)
    if is_object_store(fs):
        fs.put_file(local_path, path)
        return
    tmp = _temporary(fs, path)
    fs.put_file(local_path, tmp)
    fs.mv(tmp, path)


def _temporary(fs, path: str) -> str:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    return f"{path}{TEMP_MARK}{uuid.uuid4().hex[:8]}"


@contextmanager
def writing(uri: str) -> Iterator[str]:
    """A local path to write the file `uri` will hold, published under `uri` when the block ends
    without an exception and removed when it raises: a temporary name beside a local `uri`, else
    a file in the system temp folder that one upload publishes. For files written a piece at a
    time (downloads)."""
    fs, path = fs_and_path(uri)
    local = not is_object_store(fs) and isinstance(fs, LocalFileSystem)
    if local:
        tmp = _temporary(fs, path)
    else:
        fd, tmp = tempfile.mkstemp(prefix="peakclips-part-")
        os.close(fd)
    try:
        yield tmp
        if local:
            os.replace(tmp, path)
        else:
            upload_atomic(tmp, uri)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def create_exclusive(uri: str, data: bytes) -> None:
    """Create the file `uri` holding `data`, whole, only if it does not exist yet; else
    FileExistsError. Two processes that try at once: exactly one succeeds. Locally a hard link
    of a finished temporary (O_EXCL semantics with the content already whole); on S3 a
    conditional PUT (`If-None-Match: *`, which AWS S3 and moto honour); elsewhere fsspec's
    exclusive create (`mode="create"`) where the backend has one."""
    fs, path = fs_and_path(uri)
    if isinstance(fs, LocalFileSystem):
        tmp = _temporary(fs, path)
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # fails with FileExistsError when `path` exists, whatever it holds
        finally:
            os.remove(tmp)
        return
    fs.pipe_file(path, data, mode="create")


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
    a file, or read-only, or full, or a bucket that does not exist or refuses writes (a 1 MiB
    probe file is written and removed). Nothing stays, and no bucket is created."""
    for uri in uris:
        fs, path = fs_and_path(uri)
        try:
            _probe(fs, path.rstrip("/"), uri)
        except OutputError:
            raise
        except OSError as e:
            if isinstance(e, FileNotFoundError) and is_object_store(fs):
                raise OutputError(f"cannot write to {uri}: its bucket does not exist (peakclips creates none); "
                                  "create it or choose another --output") from None
            raise OutputError(f"cannot write to {uri}: {e.strerror or type(e).__name__}; "
                              "choose another --output or free space there") from None
        except Exception as e:  # noqa: BLE001 - a backend's own errors (botocore's NoCredentialsError, ...)
            raise OutputError(f"cannot write to {uri}: {type(e).__name__}; check the bucket's name, the "
                              "credentials (the backend's standard sources) and storage_options") from None


def _probe(fs, path: str, uri: str) -> None:
    if fs.exists(path) and not fs.isdir(path):
        raise OutputError(f"{uri} is a file, not a folder: give --output a folder")
    probe = f"{path}/.peakclips-write-probe-{uuid.uuid4().hex[:8]}"
    # Removed again: a run that stops leaves nothing. An object store has no folders to make (and
    # s3fs's makedirs would create a missing bucket).
    created = None if is_object_store(fs) else _first_missing(fs, path)
    try:
        if created:
            fs.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as f:
            f.write(bytes(PROBE_BYTES))
    finally:
        try:
            if fs.exists(probe):
                fs.rm(probe)
            if created and fs.exists(created):
                fs.rm(created, recursive=True)
        except OSError:
            pass


def abort_uploads(output: str, prefixes: tuple[str, ...]) -> int:
    """Abort the unfinished multipart uploads of an S3 output whose keys start with one of
    `prefixes` (names under `output`): what a killed upload of a large file leaves. They are
    invisible to readers but cost storage until aborted. Other stores: nothing to do (0)."""
    fs, path = fs_and_path(output)
    if not any(p in ("s3", "s3a") for p in _protocols(fs)):
        return 0
    bucket, _, key = path.partition("/")
    wanted = tuple(f"{key.rstrip('/')}/{p}".lstrip("/") for p in prefixes)
    stale = [u for u in fs.list_multipart_uploads(bucket) if u["Key"].startswith(wanted)]
    for upload in stale:
        fs.abort_mpu(bucket, upload["Key"], upload["UploadId"])
    return len(stale)


# Storage options are the place for where and how to reach a store, never for who you are:
# credentials come from the backend's standard sources only, so a config file can be shared.
SECRET_WORDS = re.compile(r"key|secret|token|passw|credential|auth|session|signature|cookie", re.I)


def check_storage_options(options: dict) -> None:
    """ValueError naming the first key that looks like a credential (at any depth), or a value
    that carries a URL's userinfo."""
    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if SECRET_WORDS.search(str(k)):
                    raise ValueError(f"'{where}{k}' looks like a credential: storage_options takes where and how "
                                     "to reach a store (endpoint, region, requester-pays); credentials come from "
                                     "the backend's standard sources (AWS_* variables, instance roles, "
                                     "GOOGLE_APPLICATION_CREDENTIALS, HF_TOKEN)")
                walk(v, f"{where}{k}.")
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v, where)
        elif isinstance(node, str) and "@" in node.partition("://")[2].partition("/")[0]:
            raise ValueError(f"'{where.rstrip('.')}' holds a URL with a user name or password")
    walk(options, "storage_options.")


def configure(options: dict[str, dict]) -> dict[str, str]:
    """Apply a run's `storage_options` ({protocol: {option: value}}) to fsspec in this process
    (fsspec.config.conf: every filesystem made from then on gets them) and return them as the
    `FSSPEC_<PROTOCOL>` variables, fsspec's own way to configure other processes (Ray workers)."""
    import fsspec.config

    check_storage_options(options)
    env = {}
    for proto, opts in options.items():
        fsspec.config.conf.setdefault(proto, {}).update(opts)
        env[f"FSSPEC_{proto.upper()}"] = json.dumps(opts, sort_keys=True)
    return env


def missing_folder(uri: str) -> str | None:
    """The outermost folder of a local `uri` that does not exist yet (None when it exists, or on
    an object store, which has no folders): what a run would create, and may remove again."""
    fs, path = fs_and_path(uri)
    return _first_missing(fs, path.rstrip("/")) if isinstance(fs, LocalFileSystem) else None


def remove_if_empty(folder: str) -> None:
    """Remove a local folder tree that holds no file (a run that stopped before writing any)."""
    if os.path.isdir(folder) and not any(files for _, _, files in os.walk(folder)):
        shutil.rmtree(folder, ignore_errors=True)


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
        user = user_error(e)  # a worker's one sentence (finalize_shard's), unwrapped from Ray's traceback
        if cause is None and user is None:
            raise
        # Other tasks met the same disk; Ray would print each of their errors at exit.
        os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
        if cause is not None:
            raise storage_fault_error(output, os.strerror(cause.errno)) from None
        if user is e:
            raise
        raise user from None


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
