"""Paths and URIs for outputs: local folders or any fsspec URI (s3://, gs://, ...).

Workers never assume they share the driver's disk: everything a worker writes goes through
these helpers to the output location, which on a cluster is shared storage.
Writes are atomic: bytes go to a temporary name in the same folder, then are renamed.
"""

from __future__ import annotations

import os
import shutil
import uuid

import fsspec
from fsspec.implementations.local import LocalFileSystem

TEMP_MARK = ".tmp-"
"""Temporaries are named `<final name>.tmp-<id>`: a killed writer's leftovers are found by it."""


def fs_and_path(uri: str):
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def exists(uri: str) -> bool:
    fs, path = fs_and_path(uri)
    return fs.exists(path)


def read_bytes(uri: str) -> bytes:
    fs, path = fs_and_path(uri)
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
