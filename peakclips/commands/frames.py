"""`peakclips frames`: any-k frames for one query of a built dataset (SPEC section 2.2).

Reads finished shards only: the Parquet indexes say which shard holds a video (and why a video
or query was dropped), the tar gives the sample's JSON and its candidate frames. clip2frame
turns the query's highlight clips into k timestamps; with `--out` the k frames are written as
JPEGs, decoded from the source video when it is given and readable (`--video`, or the
`--manifest` the dataset was built from), else taken from the shard's T candidate frames
(the candidate nearest in time to each timestamp). `keyframes` returns the result as a dict;
`format_keyframes` is the text the command prints without --json.
"""

from __future__ import annotations

from pathlib import Path

from peakclips import storage
from peakclips.clip2frame import clip2frame
from peakclips.dataset import iter_samples, read_index
from peakclips.errors import DatasetError
from peakclips.shards import complete_shards, index_path, is_safe_key


def find_sample(output: str, video_id: str) -> tuple[dict, bytes, dict[int, dict]]:
    """(sample, candidate MP4, index rows by query id) for `video_id`; DatasetError if not kept."""
    for name in complete_shards(output):
        if not storage.exists(index_path(output, name)):
            continue
        rows = [r for r in read_index(output, name).to_pylist() if r["video_id"] == video_id]
        if not rows:
            continue
        if rows[0]["status"] == "error" or (rows[0]["status"] == "dropped" and all(r["status"] != "ok" for r in rows)):
            why = rows[0]["error"] or rows[0]["drop_reason"] or rows[0]["status"]
            raise DatasetError(f"video {video_id} has no sample in {output}: it was {rows[0]['status']} ({why})")
        for _, sample, mp4 in iter_samples(output, frames=True, keys={rows[0]["key"]}, shards=[name]):
            return sample, mp4, {r["query_id"]: r for r in rows if r["query_id"] is not None}
        raise DatasetError(f"video {video_id}: the index of {name} lists it but its tar has no sample")
    raise DatasetError(f"video {video_id} is not in {output}")


def query_of(sample: dict, index_rows: dict[int, dict], query_id: int) -> dict:
    for q in sample["queries"]:
        if q["query_id"] == query_id:
            return q
    if query_id in index_rows:
        r = index_rows[query_id]
        raise DatasetError(f"query {query_id} of {sample['video_id']} was dropped ({r['drop_reason']}): "
                           f"{r['query']!r} has no highlights in the dataset")
    kept = ", ".join(str(q["query_id"]) for q in sample["queries"])
    raise DatasetError(f"{sample['video_id']} has no query {query_id} (kept queries: {kept})")


def frames_from_candidates(sample: dict, mp4: bytes, times: list[float]) -> tuple[list, list[float]]:
    """The candidate frame nearest in time to each timestamp, and that candidate's time."""
    from peakclips.frametimes import nearest
    from peakclips.video import decode_mp4

    frames = decode_mp4(mp4)
    cand = sample["frame_times_s"][: len(frames)]
    picks = [nearest(cand, t) for t in times]
    return [frames[i] for i in picks], [float(cand[i]) for i in picks]


def frames_from_video(uri: str, times: list[float]) -> list:
    """The frame shown at each (sorted) time (frametimes.frames_at), in one decode pass."""
    from peakclips.errors import VideoError
    from peakclips.frametimes import frames_at
    from peakclips.video import iter_frames, to_rgb

    shown = frames_at(((d.time_s, d.frame) for d in iter_frames(uri)), times, convert=to_rgb)
    if not shown:
        raise VideoError("no_frames", f"no frame decodes from {uri}")
    return [img for _, img in shown]


def source_uri(video_id: str, video: str | None, manifest: str | None) -> str | None:
    if video:
        return video
    if manifest:
        from peakclips.manifest import read_manifest

        return next((r.uri for r in read_manifest(manifest) if r.video_id == video_id), None)
    return None


def frames_from_source(uri: str, times: list[float], from_manifest: bool, ingest) -> list:
    """Frames from the source video. A manifest's URI is untrusted input: it goes through
    ingest's checks (`fetch.fetch`: allowed roots, address checks, download caps) into
    a temporary folder; a `--video` the user typed is opened as given (single-file media only)."""
    import tempfile

    if not from_manifest:
        return frames_from_video(uri, times)
    from peakclips.fetch import fetch

    with tempfile.TemporaryDirectory(prefix="peakclips-frames-") as scratch:
        return frames_from_video(fetch(uri, ingest, scratch, "source"), times)


def write_frames(sample: dict, mp4: bytes, query_id: int, times: list[float], out: str,
                 uri: str | None, from_manifest: bool = False, ingest=None) -> dict:
    """Write the frames as JPEGs into `out` (and nowhere else); returns where they came from
    and their paths."""
    from peakclips.errors import VideoError
    from peakclips.redact import redact_text, redact_uri
    from peakclips.video import encode_jpeg

    if not is_safe_key(sample["key"]):  # file names are made from it: a '/' would leave `out`
        raise DatasetError(f"the shard's sample key {sample['key'][:80]!r} is not a safe file name")
    info: dict = {"source": "candidates"}
    images = None
    if uri:
        try:
            images = frames_from_source(uri, times, from_manifest, ingest)
            info = {"source": "video", "video": redact_uri(uri)}
        except VideoError as e:
            info["note"] = f"source video not readable ({e.code}: {redact_text(e.detail)[:200]}); used the candidate frames"
    if images is None:
        images, info["candidate_times_s"] = frames_from_candidates(sample, mp4, times)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    info["paths"] = []
    for i, (t, img) in enumerate(zip(times, images)):
        path = folder / f"{sample['key']}_q{query_id}_{i:03d}_{t:010.3f}s.jpg"
        path.write_bytes(encode_jpeg(img))
        info["paths"].append(str(path))
    return info


def keyframes(output: str, video_id: str, query_id: int, k: int, mode: str = "auto",
              background: float = 0.25, out: str | None = None, video: str | None = None,
              manifest: str | None = None, ingest=None) -> dict:
    """The k timestamps of one query (and, with `out`, the frames written as JPEGs). `ingest` (an
    IngestConfig) checks a `manifest`'s URI; default: local files under the manifest's folder."""
    if manifest and ingest is None:
        from peakclips.config import IngestConfig

        ingest = IngestConfig(allowed_roots=[str(Path(manifest).resolve().parent)])
    sample, mp4, index_rows = find_sample(output, video_id)
    query = query_of(sample, index_rows, query_id)
    chosen = clip2frame(query["highlights"], sample["duration_s"], k, mode, background=background)
    result = {"video_id": video_id, "key": sample["key"], "query_id": query_id, "query": query["query"],
              "duration_s": sample["duration_s"], "k": k, "mode": chosen.mode,
              "highlights": [{k_: h[k_] for k_ in ("start_s", "end_s", "priority")} for h in query["highlights"]],
              "timestamps_s": chosen.times_s}
    if out:
        result |= {"out": out, **write_frames(sample, mp4, query_id, chosen.times_s, out,
                                              source_uri(video_id, video, manifest),
                                              from_manifest=not video and bool(manifest), ingest=ingest)}
    return result


def format_keyframes(result: dict) -> str:
    """A header line, one `time<TAB>P1|P2|background` line per timestamp, and where frames went."""
    hl = result["highlights"]
    clips = ", ".join(f"{h['priority']} {h['start_s']:.2f}-{h['end_s']:.2f} s" for h in hl)
    lines = [f"# {result['video_id']} query {result['query_id']}: {result['query']!r}; highlights: {clips}; "
             f"k={result['k']}, mode={result['mode']}"]
    for t in result["timestamps_s"]:
        where = next((h["priority"] for h in hl if h["start_s"] <= t < h["end_s"]), "background")
        lines.append(f"{t:.6f}\t{where}")
    if "out" in result:
        lines.append(f"# {len(result['paths'])} frames from the {result['source']} in {result['out']}"
                     + (f" ({result['note']})" if "note" in result else ""))
    return "\n".join(lines)
