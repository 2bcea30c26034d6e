"""`peakclips frames`: any-k frames for one query of a built dataset (SPEC section 2.2).

Reads finished shards only: the Parquet indexes say which shard holds a video (and why a video
or query was dropped), the tar gives the sample's JSON and its candidate frames. clip2frame
turns the query's highlight clips into k timestamps; with `--out` the k frames are written as
JPEGs, decoded from the source video when it is given and readable (`--video`, or the
`--manifest` the dataset was built from), else taken from the shard's T candidate frames
(the candidate nearest in time to each timestamp).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from peakclips import storage
from peakclips.errors import InputError
from peakclips.shards import complete_shards, iter_samples, read_index
from peakclips.train.clip2frame import clip2frame


class DatasetError(InputError):
    """A video or query that the dataset does not have; the message says why."""


def find_sample(output: str, video_id: str) -> tuple[dict, bytes, dict[int, dict]]:
    """(sample, candidate MP4, index rows by query id) for `video_id`; DatasetError if not kept."""
    for name in complete_shards(output):
        index = storage.join(output, name + ".parquet")
        if not storage.exists(index):
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
    import numpy as np

    from peakclips.video import decode_mp4

    frames = decode_mp4(mp4)
    cand = np.asarray(sample["frame_times_s"][: len(frames)])
    picks = [int(np.abs(cand - t).argmin()) for t in times]
    return [frames[i] for i in picks], [float(cand[i]) for i in picks]


def frames_from_video(uri: str, times: list[float]) -> list:
    """The frame on screen at each time (the last frame with pts <= t), in one decode pass."""
    from peakclips.errors import VideoError
    from peakclips.video import iter_frames, to_rgb

    out, held, i = [], None, 0
    for decoded in iter_frames(uri):
        if held is not None and i < len(times) and times[i] < decoded.time_s:
            img = to_rgb(held)  # converted only when some timestamp shows it
            while i < len(times) and times[i] < decoded.time_s:
                out.append(img)
                i += 1
        if i == len(times):
            break
        held = decoded.frame
    if held is None:
        raise VideoError("no_frames", f"no frame decodes from {uri}")
    return out + [to_rgb(held)] * (len(times) - len(out))


def source_uri(video_id: str, video: str | None, manifest: str | None) -> str | None:
    if video:
        return video
    if manifest:
        from peakclips.manifest import read_manifest

        return next((r.uri for r in read_manifest(manifest) if r.video_id == video_id), None)
    return None


def frames_from_source(uri: str, times: list[float], from_manifest: bool, ingest) -> list:
    """Frames from the source video. A manifest's URI is untrusted input: it goes through
    ingest's checks (`stages.ingest.fetch`: allowed roots, address checks, download caps) into
    a temporary folder; a `--video` the user typed is opened as given (single-file media only)."""
    import tempfile

    if not from_manifest:
        return frames_from_video(uri, times)
    from peakclips.stages.ingest import fetch

    with tempfile.TemporaryDirectory(prefix="peakclips-frames-") as scratch:
        return frames_from_video(fetch(uri, ingest, scratch, "source"), times)


def write_frames(sample: dict, mp4: bytes, query_id: int, times: list[float], out: str,
                 uri: str | None, from_manifest: bool = False, ingest=None) -> dict:
    """Write the frames as JPEGs into `out` (and nowhere else); returns where they came from
    and their paths."""
    from peakclips.errors import VideoError
    from peakclips.manifest import is_safe_key
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


def frames_command(output: str, video_id: str, query_id: int, k: int, mode: str = "auto",
                   background: float = 0.25, as_json: bool = False, out: str | None = None,
                   video: str | None = None, manifest: str | None = None, ingest=None) -> int:
    """`peakclips frames`: print the k timestamps (and write the frames with `out`). `ingest` (an
    IngestConfig) checks a `manifest`'s URI; default: local files under the manifest's folder."""
    if manifest and ingest is None:
        from peakclips.config import IngestConfig

        ingest = IngestConfig(allowed_roots=[str(Path(manifest).resolve().parent)])
    try:
        sample, mp4, index_rows = find_sample(output, video_id)
        query = query_of(sample, index_rows, query_id)
        times = clip2frame(query["highlights"], sample["duration_s"], k, mode, background=background)
    except (DatasetError, ValueError) as e:
        print(f"peakclips: error: {e}", file=sys.stderr)
        return 2
    if not query["highlights"] or mode == "auto":  # say which rule clip2frame applied
        mode = "uniform" if not query["highlights"] else "focused" if k <= 8 else "hybrid"
    result = {"video_id": video_id, "key": sample["key"], "query_id": query_id, "query": query["query"],
              "duration_s": sample["duration_s"], "k": k, "mode": mode,
              "highlights": [{k_: h[k_] for k_ in ("start_s", "end_s", "priority")} for h in query["highlights"]],
              "timestamps_s": times}
    if out:
        result |= write_frames(sample, mp4, query_id, times, out, source_uri(video_id, video, manifest),
                               from_manifest=not video and bool(manifest), ingest=ingest)
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    clips = ", ".join(f"{h['priority']} {h['start_s']:.2f}-{h['end_s']:.2f} s" for h in result["highlights"])
    print(f"# {video_id} query {query_id}: {query['query']!r}; highlights: {clips}; k={k}, mode={mode}")
    for t in times:
        where = next((h["priority"] for h in query["highlights"] if h["start_s"] <= t < h["end_s"]), "background")
        print(f"{t:.6f}\t{where}")
    if out:
        print(f"# {len(result['paths'])} frames from the {result['source']} in {out}"
              + (f" ({result['note']})" if "note" in result else ""))
    return 0
