"""Object storage against a real S3 API (moto's server on 127.0.0.1, tests/s3_server.py; SPEC
section 9): inputs under `ingest.allowed_prefixes` only, refused ones before any request; the
download caps; whole-object writes with no temporary names; the write probe and the lock on a
bucket; what resume clears; `storage_options` without secrets. The end-to-end runs are in
tests/test_object_storage_runs.py."""

import json

import fsspec.config
import pytest

from peakclips import shards, storage
from peakclips.config import ConfigError, IngestConfig, load_config
from peakclips.errors import OutputError
from peakclips.lock import OutputLock, OutputLocked
from peakclips.manifest import plan_tasks, read_manifest
from peakclips.manifest_build import Columns, build, local_manifest
from peakclips.resume import prepare
from peakclips.stages.ingest import Ingest
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.test_resume import RUN

pytestmark = pytest.mark.s3

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"


def ingest(uri, tmp_path, **cfg):
    row = {"uri": uri, "shard_id": 0, "key": "k", "error": None}
    return Ingest(IngestConfig(**cfg), str(tmp_path / "scratch"))(row)


def test_a_video_under_an_allowed_prefix_is_fetched_and_probed(s3, tmp_path):
    s3.fs.put_file(str(CLIP), f"{s3.name}/videos/a/sintel.mp4")
    out = ingest(s3.url("videos/a/sintel.mp4"), tmp_path, allowed_prefixes=[s3.url("videos/")])
    assert out["error"] is None, out["error_detail"]
    assert out["path"].startswith(str(tmp_path / "scratch")) and abs(out["duration_s"] - 10) < 0.5
    assert open(out["path"], "rb").read() == CLIP.read_bytes()
    gets = [r for r in s3.requests("videos/a/sintel.mp4") if r[0] == "GET"]
    assert len(gets) == 1  # one streamed GET, not one request per block


def test_with_scratch_on_a_bucket_too_the_video_is_read_in_place(s3):
    """A copy into scratch on object storage would be read in place anyway: no copy is made."""
    s3.fs.put_file(str(CLIP), f"{s3.name}/videos/sintel.mp4")
    row = {"uri": s3.url("videos/sintel.mp4"), "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allowed_prefixes=[s3.url("videos/")]), s3.url("out/_scratch"))(row)
    assert out["error"] is None and out["path"] == s3.url("videos/sintel.mp4") and abs(out["duration_s"] - 10) < 0.5
    assert s3.keys() == ["videos/sintel.mp4"]
    too_big = Ingest(IngestConfig(allowed_prefixes=[s3.url("videos/")], max_download_bytes=1000), s3.url("scratch"))
    assert too_big(dict(row))["error"] == "ingest:too_large"


@pytest.mark.parametrize("key, prefixes", [
    ("private/secret.mp4", ["videos/"]),  # another folder
    ("videos-private/secret.mp4", ["videos"]),  # a prefix is a folder, not the start of a name
    ("private/secret.mp4", []),  # no prefix: nothing on object storage is read
])
def test_a_uri_outside_the_allowed_prefixes_is_refused_before_any_request(s3, tmp_path, key, prefixes):
    s3.fs.put_file(str(CLIP), f"{s3.name}/{key}")
    before = len(s3.server.requests())
    out = ingest(s3.url(key), tmp_path, allowed_prefixes=[s3.url(p) for p in prefixes])
    assert out["error"] == "ingest:prefix_not_allowed", out
    assert s3.url(key) in out["error_detail"]
    assert len(s3.server.requests()) == before  # not a HEAD, not a listing: nothing reached the server


@pytest.mark.parametrize("uri, code", [
    ("s3://BUCKET/videos/../private/secret.mp4", "ingest:bad_uri"),
    ("s3://BUCKET/videos//x.mp4", "ingest:bad_uri"),
    ("s3://BUCKET/videos/x.mp4::file:///etc/passwd", "ingest:bad_uri"),
    ("s3://BUCKET/videos/x.mp4?versionId=1", "ingest:bad_uri"),
    ("s3://key:secret@BUCKET/videos/x.mp4", "ingest:bad_uri"),
    ("ftp://BUCKET/videos/x.mp4", "ingest:scheme_not_allowed"),
])
def test_object_uris_that_could_leave_the_prefix_are_refused(s3, tmp_path, uri, code):
    before = len(s3.server.requests())
    out = ingest(uri.replace("BUCKET", s3.name), tmp_path, allowed_prefixes=[s3.url("videos/")])
    assert out["error"] == code, out
    assert "secret@" not in out["error_detail"]
    assert len(s3.server.requests()) == before


def test_the_download_caps_hold_for_objects(s3, tmp_path):
    s3.fs.put_file(str(CLIP), f"{s3.name}/videos/big.mp4")
    s3.fs.pipe_file(f"{s3.name}/videos/empty.mp4", b"")
    allowed = [s3.url("videos/")]
    before = len(s3.server.requests())
    out = ingest(s3.url("videos/big.mp4"), tmp_path, allowed_prefixes=allowed, max_download_bytes=1000)
    assert out["error"] == "ingest:too_large"
    assert [m for m, *_ in s3.server.requests()[before:]] == ["HEAD"]  # refused on its size: no GET
    out = ingest(s3.url("videos/big.mp4"), tmp_path, allowed_prefixes=allowed, download_timeout_s=0.001)
    assert out["error"] == "ingest:download_timeout"
    assert ingest(s3.url("videos/empty.mp4"), tmp_path, allowed_prefixes=allowed)["error"] == "ingest:empty_file"
    assert ingest(s3.url("videos/none.mp4"), tmp_path, allowed_prefixes=allowed)["error"] == "ingest:not_found"
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]  # no partial file left


def test_writes_to_a_bucket_are_whole_objects_under_their_final_names(s3, tmp_path):
    local = tmp_path / "f.bin"
    local.write_bytes(b"x" * 1000)
    storage.write_atomic(s3.url("out/a.json"), b"{}")
    storage.upload_atomic(str(local), s3.url("out/b.bin"))
    with storage.writing(s3.url("out/c.bin")) as path:
        open(path, "wb").write(b"c")
    with pytest.raises(RuntimeError), storage.writing(s3.url("out/d.bin")) as path:
        open(path, "wb").write(b"half")
        raise RuntimeError("killed halfway")
    assert s3.keys() == ["out/a.json", "out/b.bin", "out/c.bin"]
    writes = [p for m, p, _ in s3.requests("/out/") if m in ("PUT", "POST")]
    assert writes == [f"/{s3.name}/out/{n}" for n in ("a.json", "b.bin", "c.bin")]  # no temporary, no copy


def test_the_write_probe_on_buckets(s3):
    storage.check_writable(s3.url("out"))
    assert s3.keys() == []
    with pytest.raises(OutputError, match="its bucket does not exist") as e:
        storage.check_writable("s3://no-such-bucket-14/out")
    assert "\n" not in str(e.value)
    assert not [r for r in s3.server.requests() if r[0] == "PUT" and r[1].rstrip("/") == "/no-such-bucket-14"]


def test_the_lock_on_a_bucket_is_a_conditional_create(s3):
    out = s3.url("out")
    with OutputLock(out, log=lambda _: None):
        with pytest.raises(OutputLocked, match=f"lock {s3.url('out/' + shards.LOCK)}"):
            OutputLock(out).acquire()
        assert (f"/{s3.name}/out/{shards.LOCK}", 412) in [(p, s) for m, p, s in s3.requests() if m == "PUT"]
    assert s3.keys() == []


def test_resume_aborts_a_killed_multipart_upload_of_the_shard(s3):
    key = "out/peakclips-000000.tar"
    upload = s3.fs.call_s3("create_multipart_upload", Bucket=s3.name, Key=key)
    other = s3.fs.call_s3("create_multipart_upload", Bucket=s3.name, Key="elsewhere/big.bin")
    plan = prepare(s3.url("out"), [0], [], RUN.model_copy(update={"fingerprint": "f"}), force=False)
    left = {(u["Key"], u["UploadId"]) for u in s3.fs.list_multipart_uploads(s3.name)}
    assert left == {("elsewhere/big.bin", other["UploadId"])} and plan.removed == 1
    assert upload["UploadId"] not in {u for _, u in left}


def test_storage_options_reach_the_store_and_refuse_credentials(s3, monkeypatch):
    for secret in ("storage_options.s3.secret=x", "storage_options.s3.key=x", "storage_options.gs.token=x",
                   "storage_options.s3.client_kwargs={aws_session_token: x}",
                   "storage_options.s3.endpoint_url=http://user:pw@127.0.0.1:9"):
        with pytest.raises(ConfigError, match="storage_options") as e:
            load_config(SAMPLE_CONFIG, [secret])
        assert "pw" not in str(e.value).replace("password", "") and "=x" not in str(e.value)
    with pytest.raises(ConfigError, match="not an object store"):
        load_config(SAMPLE_CONFIG, ["storage_options.file.auto_mkdir=true"])
    cfg = load_config(SAMPLE_CONFIG, [f"storage_options.s3.endpoint_url={s3.server.endpoint}"])
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the config says where the store is now
    monkeypatch.setattr(fsspec.config, "conf", {})
    assert storage.configure(cfg.storage_options) == {"FSSPEC_S3": json.dumps({"endpoint_url": s3.server.endpoint})}
    storage.write_atomic(s3.url("via-options.txt"), b"ok")
    assert s3.keys() == ["via-options.txt"]


def test_manifests_from_a_prefix_a_table_and_a_remote_table(s3, tmp_path):
    for key in ("videos/b/clip.mp4", "videos/a.webm", "videos/notes.txt", "videos/.hidden.mp4"):
        s3.fs.put_file(str(CLIP), f"{s3.name}/{key}")
    s3.fs.pipe_file(f"{s3.name}/videos/empty.mkv", b"")
    built = build([s3.url("videos/")], license="CC-BY-4.0")
    assert [(r["video_id"], r["uri"]) for r in built.rows] == [("a.webm", s3.url("videos/a.webm")),
                                                               ("b/clip.mp4", s3.url("videos/b/clip.mp4"))]
    assert {r["license"] for r in built.rows} == {"CC-BY-4.0"}
    assert sorted(r for _, r in built.skipped)[0] == "empty file" and len(built.skipped) == 3
    assert not [p for m, p, _ in s3.requests("/videos/") if m == "GET" and "list-type" not in p]  # listed only

    table = "name,path,tags\nclip-1,clips/one.mp4,\"[\"\"a dog\"\", \"\"a cat\"\"]\"\nclip-2,s3://b/v.mp4,one query\n"
    s3.fs.pipe_file(f"{s3.name}/lists/t.csv", table.encode())
    cols = Columns(video_id="name", uri="path", queries="tags")
    with local_manifest(s3.url("lists/t.csv"), cols) as path:
        rows = read_manifest(path)
    assert [(r.video_id, r.uri, r.queries) for r in rows] == [
        ("clip-1", s3.url("lists/clips/one.mp4"), ["a dog", "a cat"]), ("clip-2", "s3://b/v.mp4", ["one query"])]
    (tmp_path / "t.csv").write_text(table)
    with local_manifest(str(tmp_path / "t.csv"), cols) as path:  # relative paths: against the table's folder
        assert [t.row.uri for t in plan_tasks(read_manifest(path), 1)][0] == str(tmp_path / "clips/one.mp4")
