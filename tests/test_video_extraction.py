"""Extraction from real video: decoding and A/V sync, face tracks on real GRID faces, mouth crops, chunked
inference at bounded memory, `elegance-extract` and the pipeline's ``video=`` entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av  # the [video] extra, which `make test` installs
import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoModel, AutoProcessor
from video_fixtures import GRID, LEFT_CLIP, crossing_faces, grid_clip, two_talker_video

import modeling_elegance  # noqa: F401
import pipelines  # noqa: F401
from pipelines.chunked_extraction import chunk_frames, extract_in_chunks
from pipelines.cli import run as run_extract_cli
from pipelines.video_extraction import extract_from_video
from processing.face_tracking import FaceTracker
from processing.media_decoding import iter_frames, read_audio
from processing.media_writing import write_video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "pretrained", "usev-tiny")


@pytest.fixture(scope="module")
def shipped():
    return AutoModel.from_pretrained(SHIPPED).eval(), AutoProcessor.from_pretrained(SHIPPED)


@pytest.fixture(scope="module")
def two_talkers(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "two_talkers.mp4")
    return path, two_talker_video(path)


@pytest.fixture(scope="module")
def extracted(two_talkers, tmp_path_factory):
    """`elegance-extract` on the two-talker video, once for the module."""
    out = str(tmp_path_factory.mktemp("voices"))
    summary = run_extract_cli([two_talkers[0], "--model", SHIPPED, "--out", out])
    return out, summary


def _lag(signal: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """The delay of ``reference`` inside ``signal`` (samples), by cross-correlation."""
    window = reference[: 2 * 16000]
    scores = [float(np.dot(signal[lag : lag + len(window)], window)) for lag in range(max_lag)]
    return int(np.argmax(scores))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return abs(float(np.dot(a[:n], b[:n]) / (np.linalg.norm(a[:n]) * np.linalg.norm(b[:n]) + 1e-12)))


# --- decoding ------------------------------------------------------------------------------------------------------
def test_frame_rate_and_audio_rate_conversion(tmp_path):
    """A 30 fps video with 44.1 kHz stereo audio comes out at 25 fps and 16 kHz mono; each output frame is the latest
    source frame shown by its time."""
    source_frames = 60  # 2 s at 30 fps
    frames = [np.full((64, 80, 3), 4 * index, dtype=np.uint8) for index in range(source_frames)]
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * 44100) / 44100).astype(np.float32)
    path = str(tmp_path / "thirty.mp4")
    write_video(path, frames, 30, [("tone", np.stack([tone, tone]))], 44100)  # the same tone in both channels
    with av.open(path) as container:
        assert container.streams.audio[0].codec_context.channels == 2
    audio, timeline = read_audio(path, 16000, 25)
    assert abs(len(audio) - 2 * 16000) < 16000 * 0.1  # AAC pads its last frame
    reference = 0.3 * np.sin(2 * np.pi * 440 * np.arange(len(audio)) / 16000)
    lag = int(np.argmax([np.dot(audio[k : k + 8000], reference[:8000]) for k in range(0, 400)]))
    middle = slice(lag + 4000, lag + 12000)  # away from AAC's edges
    assert np.corrcoef(audio[middle], reference[4000:12000])[0, 1] > 0.99  # a 440 Hz tone, mono, at 16 kHz
    decoded = list(iter_frames(path, timeline))
    assert len(decoded) == timeline.frames == int(np.ceil(len(audio) * 25 / 16000))
    shown = [int(round(float(frame.mean()) / 4)) for frame in decoded[:50]]
    assert shown == [min(int(k * 30 / 25 + 1e-9), source_frames - 1) for k in range(50)]


def test_grayscale_frames_are_ffmpegs(two_talkers):
    """Frames read from the luma plane equal FFmpeg's own conversion to grayscale (limited-range MPEG-1 and H.264)."""
    for path in (os.path.join(GRID, LEFT_CLIP), two_talkers[0]):
        _, timeline = read_audio(path)
        with av.open(path) as container:
            expected = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
        ours = list(iter_frames(path, timeline))
        for frame_ours, frame_ffmpeg in zip(ours, expected):
            np.testing.assert_array_equal(frame_ours, frame_ffmpeg)


def test_audio_that_starts_late_is_aligned(tmp_path):
    """An audio stream starting 0.2 s after the video lands 0.2 s into the timeline (within 1 ms)."""
    on_time = two_talker_video(str(tmp_path / "on_time.mp4"))
    two_talker_video(str(tmp_path / "late.mp4"), audio_delay_seconds=0.2)
    on_time_audio, _ = read_audio(str(tmp_path / "on_time.mp4"))
    late_audio, late_timeline = read_audio(str(tmp_path / "late.mp4"))
    assert abs(_lag(on_time_audio, on_time["mixture"], 4800)) <= 16
    assert abs(_lag(late_audio, on_time["mixture"], 4800) - 3200) <= 16
    assert late_timeline.video_offset_seconds == 0.0
    assert late_timeline.frames == int(np.ceil(len(late_audio) * 25 / 16000))


def test_a_file_without_audio_is_refused(tmp_path):
    path = str(tmp_path / "silent_film.mp4")
    write_video(path, [np.zeros((32, 32, 3), np.uint8)] * 5, 25, [], 16000)
    with pytest.raises(ValueError, match="has no audio stream: target speech extraction needs the recorded mixture"):
        read_audio(path)


# --- faces ---------------------------------------------------------------------------------------------------------
def test_two_real_faces_are_tracked_on_their_halves_for_the_whole_clip(extracted, two_talkers):
    out, summary = extracted
    faces = summary["faces"]
    assert [face["face"] for face in faces] == [0, 1]
    assert all(face["coverage"] == 1.0 for face in faces)
    width = 2 * 360
    assert faces[0]["mouth_center"][0] < width / 2 < faces[1]["mouth_center"][0]


def test_mouth_crops_follow_the_same_mouth_as_in_the_single_clip(shipped, two_talkers):
    """The left face's crops in the side-by-side video match the crops of its clip alone (re-encoded once)."""
    model, processor = shipped
    both = extract_from_video(two_talkers[0], model, processor)
    alone = extract_from_video(os.path.join(GRID, LEFT_CLIP), model, processor)
    frames = min(len(both.faces[0].mouth_rois), len(alone.faces[0].mouth_rois))
    a = both.faces[0].mouth_rois[:frames].astype(np.float64)
    b = alone.faces[0].mouth_rois[:frames].astype(np.float64)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9
    # and the mouth moves: the crops are not one still picture
    assert np.abs(np.diff(a, axis=0)).mean() > 1.0


def test_outputs_have_the_videos_length_and_rate(extracted, two_talkers):
    out, summary = extracted
    mixture, _ = read_audio(two_talkers[0])
    for face in summary["faces"]:
        waveform, rate = soundfile.read(face["wav"], dtype="float32")
        assert rate == 16000 and waveform.shape == mixture.shape
        assert os.path.getsize(face["mouths"]) > 0
    with av.open(summary["mp4"]) as container:
        titles = [stream.metadata.get("handler_name") for stream in container.streams.audio]
        assert titles == ["original", "face 0", "face 1"]
        assert len(container.streams.video) == 1
    with open(os.path.join(out, "summary.json")) as stream:
        assert json.load(stream)["faces"] == json.loads(json.dumps(summary["faces"]))


def test_voices_are_extractions_not_the_mixture(extracted, two_talkers):
    """Each face's voice is the model's estimate (not the mixture passed through), at the mixture's level.

    Whether each voice is its own talker's is a property of the model, reported in docs/benchmarks.md: the shipped
    models learned from rendered lips and do not separate real faces by their lips (face 1's voice is the
    dominant talker's, the same as with a blank mouth). This prints the figures for the record."""
    _, summary = extracted
    _, references = two_talkers
    voices = [soundfile.read(face["wav"], dtype="float32")[0] for face in summary["faces"]]
    own = [_correlation(voices[0], references["left"]), _correlation(voices[1], references["right"])]
    other = [_correlation(voices[0], references["right"]), _correlation(voices[1], references["left"])]
    print(f"\nown-talker correlation {own}, other-talker correlation {other}")
    mixture, _ = read_audio(two_talkers[0])
    for voice in voices:
        assert _correlation(voice, mixture) < 0.99
        assert 0.1 < np.sqrt(np.mean(voice**2)) / np.sqrt(np.mean(mixture**2)) < 1.5
        assert np.abs(voice).max() < 1.0  # nothing clipped in the WAV


def test_a_mouth_crop_is_rotated_scaled_and_centred_as_its_geometry_says():
    from processing.mouth_crops import CropGeometry, crop_mouths

    frame = np.zeros((240, 320), np.uint8)
    center, angle, side = np.array([200.0, 100.0]), np.arctan2(6, 8), 30.0
    along = center + np.array([8.0, 6.0])  # 10 pixels along the rotated x axis, on a whole pixel
    for x, y in (center, along):
        frame[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2] = 255
    geometry = CropGeometry(centers=center[None], angles=np.array([angle]), sides=np.array([side]))
    crop = crop_mouths(frame, [geometry], 0, 48)[0].astype(float)
    spots = []
    for columns in (slice(0, 32), slice(32, 48)):  # the centre dot, then the one 10 * 48 / 30 = 16 pixels right
        part = crop[:, columns]
        ys, xs = np.nonzero(part > 0.5 * part.max())
        weights = part[ys, xs]
        spots.append((np.average(xs, weights=weights) + columns.start, np.average(ys, weights=weights)))
    np.testing.assert_allclose(spots[0], (23.5, 23.5), atol=0.75)
    np.testing.assert_allclose(spots[1], (23.5 + 16, 23.5), atol=0.75)


def test_no_face_found_is_a_clear_error(shipped, tmp_path):
    path = str(tmp_path / "wall.mp4")
    noise = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
    write_video(path, [np.full((96, 96, 3), 128, np.uint8)] * 25, 25, [("mixture", noise)], 16000)
    with pytest.raises(ValueError, match=r"no face was found in .*wall\.mp4: the detector \(dlib's frontal face"):
        extract_from_video(path, *shipped)


def test_a_face_seen_too_briefly_is_named_with_its_share(shipped, tmp_path):
    audio, frames = grid_clip(LEFT_CLIP)
    blank = np.full_like(frames[0], 128)
    path = str(tmp_path / "brief.mp4")
    write_video(path, frames[:15] + [blank] * 60, 25, [("mixture", audio)], 16000)
    with pytest.raises(ValueError) as error:
        extract_from_video(path, *shipped)
    message = str(error.value)
    assert "every face in" in message and "is visible for too little of the clip (3.0 s): face 0 for" in message
    assert message.endswith("at least 50% is needed (lower min_coverage to extract them anyway)")
    with pytest.raises(ValueError, match=r"face 3 was asked for, but .* has 1 face tracks: \[0\]"):
        extract_from_video(path, *shipped, faces="3", min_coverage=0.1)


def test_a_model_without_lips_is_refused(saved_models, tmp_path):
    model = AutoModel.from_pretrained(saved_models["usev-se-tiny"])
    processor = AutoProcessor.from_pretrained(saved_models["usev-se-tiny"])
    with pytest.raises(ValueError, match="takes no lips .* so it cannot tell the faces of a video apart"):
        extract_from_video(str(tmp_path / "any.mp4"), model, processor)


def test_identity_is_kept_through_a_miss(tmp_path):
    """A face that vanishes for a second comes back as the same track; a different person gets a new one."""
    _, left = grid_clip(LEFT_CLIP)
    _, other = grid_clip("lbax4n.mpg")
    blank = np.full_like(left[0], 128)
    tracker = FaceTracker()
    sequence = left[:30] + [blank] * 25 + left[30:60] + [blank] * 10 + other[:30]
    for index, frame in enumerate(sequence):
        tracker.update(index, np.ascontiguousarray(frame.mean(-1).astype(np.uint8)))
    tracks = tracker.tracks()
    assert len(tracks) == 2
    first, second = tracks
    assert min(first.landmarks) == 0 and max(first.landmarks) >= 80  # seen again after the blank second
    assert not any(30 <= index < 55 for index in first.landmarks)
    assert min(second.landmarks) >= 95


def test_identity_is_kept_through_a_crossing():
    """Two faces pass each other, one hidden behind the other for a while: each keeps its track."""
    tracker = FaceTracker()
    for index, frame in enumerate(crossing_faces()):
        tracker.update(index, np.ascontiguousarray(frame.mean(-1).astype(np.uint8)))
    tracks = tracker.tracks()
    assert len(tracks) == 2

    def mouth_x(track, frame):
        return float(track.landmarks[frame][48:68, 0].mean())

    front, behind = tracks
    assert len(front.landmarks) == 75  # in every frame, the last four followed after the last detection
    first, last = min(front.landmarks), max(front.landmarks)
    assert mouth_x(front, first) < 360 < mouth_x(front, last)  # left to right
    first, last = min(behind.landmarks), max(behind.landmarks)
    assert mouth_x(behind, first) > 360 > mouth_x(behind, last)  # right to left, after being hidden
    assert len(behind.landmarks) < len(front.landmarks) - 10


# --- chunked inference ---------------------------------------------------------------------------------------------
class _PointwiseModel(torch.nn.Module):
    """Returns minus twice its input: a model without context, so chunked and whole-file outputs must agree
    exactly (and come back at the mixture's scale and sign)."""

    class config:  # noqa: N801
        lip_input = "frames"

    def __init__(self):
        super().__init__()
        self.calls = []
        self.device = torch.device("cpu")

    def forward(self, input_values, lip_frames, **unused):
        self.calls.append((input_values.shape[-1], lip_frames.shape[1]))
        return type("Output", (), {"waveform": -2 * input_values})()


@pytest.mark.parametrize("chunk_seconds, overlap_seconds", [(1.0, 0.2), (0.8, 0.4), (2.0, 0.0), (5.0, 1.0)])
def test_chunks_cross_fade_back_to_the_whole(shipped, chunk_seconds, overlap_seconds):
    _, processor = shipped
    samples = 16000 * 3 + 123  # not a whole number of frames
    mixture = np.random.default_rng(0).normal(0, 0.1, samples).astype(np.float32)
    lips = np.random.default_rng(1).integers(0, 255, (int(np.ceil(samples / 640)), 48, 48), dtype=np.uint8)
    model = _PointwiseModel()
    estimate = extract_in_chunks(model, processor, mixture, lips, chunk_seconds, overlap_seconds)
    np.testing.assert_allclose(estimate, mixture, atol=1e-6)
    for chunk_samples, chunk_frames_seen in model.calls:  # each chunk got its own frames
        assert abs(chunk_frames_seen * 640 - chunk_samples) < 640


def test_chunk_spans_cover_everything_with_overlaps():
    spans = chunk_frames(250, 100, 25)
    assert spans[0][0] == 0 and spans[-1][1] == 250
    assert all(b[0] < a[1] and a[1] - b[0] >= 25 for a, b in zip(spans, spans[1:]))
    assert chunk_frames(60, 100, 25) == [(0, 60)]


def test_a_sink_receives_exactly_the_returned_estimate(shipped, tmp_path):
    model, processor = shipped
    rng = np.random.default_rng(0)
    mixture = rng.normal(0, 0.1, 16000 * 6).astype(np.float32)
    lips = rng.integers(0, 255, (150, 48, 48), dtype=np.uint8)
    whole = extract_in_chunks(model, processor, mixture, lips, 2.0, 0.5)
    pieces = []
    assert extract_in_chunks(model, processor, mixture, lips, 2.0, 0.5, sink=pieces.append) is None
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_one_chunk_is_the_models_own_output_at_the_mixtures_scale(shipped):
    model, processor = shipped
    rng = np.random.default_rng(0)
    mixture = rng.normal(0, 0.1, 16000 * 2).astype(np.float32)
    lips = rng.integers(0, 255, (50, 48, 48), dtype=np.uint8)
    inputs = processor(audio=mixture, videos=[lips], return_tensors="pt")
    with torch.no_grad():
        direct = model(**{name: inputs[name] for name in processor.model_input_names if name in inputs}).waveform[0]
    direct = direct.numpy()
    scale = np.dot(mixture, direct) / np.dot(direct, direct)
    np.testing.assert_allclose(extract_in_chunks(model, processor, mixture, lips), scale * direct, atol=1e-6)


def test_chunked_extraction_agrees_with_the_whole_file(shipped, tmp_path):
    """The stated tolerance: with the default chunks (4 s, overlap 1 s) the estimate of a 12 s real recording agrees
    with the whole-file one to better than 1.5 dB SI-SDR. Measured for the two faces here: 4.1 and 2.2 dB with the
    shipped usev-tiny of 50,000 steps, 6.4 and 6.0 dB with the one of 32,000 steps, 12.1 and 17.4 dB with an earlier
    one. Not exact: the models normalise over the whole input (global layer norm, inter-chunk RNNs), and it is the
    one-pass estimate that degrades on long inputs (on 60 s of joined test_switch mixtures the shipped model scores
    7.40 dB SI-SDRi in one pass and 10.47 dB in these chunks, which agree with it to 4.7 dB; docs/benchmarks.md).
    A misplaced chunk would score about 0 dB or below."""
    model, processor = shipped
    path = str(tmp_path / "twelve_seconds.mp4")
    two_talker_video(path, repeats=4)
    result = extract_from_video(path, model, processor)
    agreements = {}
    for face in result.faces:
        whole = extract_in_chunks(model, processor, result.mixture, face.mouth_rois, 1e6, 0.0)
        scale = np.dot(face.waveform, whole) / np.dot(whole, whole)
        agreements[face.face] = 10 * np.log10(
            np.sum((scale * whole) ** 2) / np.sum((face.waveform - scale * whole) ** 2)
        )
    assert all(agreement > 1.5 for agreement in agreements.values()), agreements


def test_the_pipeline_extracts_a_long_mixture_in_chunks(shipped):
    """Longer than a chunk: the pipeline's output is the chunked extraction's; ``chunk_seconds=0`` (given to the call
    or to ``pipeline()``) is one pass, the model's own output; a call's chunking overrides the pipeline's."""
    from transformers import pipeline

    model, processor = shipped
    rng = np.random.default_rng(0)
    mixture = rng.normal(0, 0.1, 16000 * 9).astype(np.float32)
    lips = rng.integers(0, 255, (225, 48, 48), dtype=np.uint8)
    chunked = extract_in_chunks(model, processor, mixture, lips, 4.0, 1.0)
    with torch.inference_mode():
        whole = model(**processor(audio=mixture, videos=[lips], return_tensors="pt")).waveform[0].numpy()
    extract = pipeline("target-speech-extraction", model=SHIPPED, device="cpu")
    np.testing.assert_array_equal(extract(mixture, lips=lips)["waveform"], chunked)
    np.testing.assert_array_equal(extract(mixture, lips=lips, chunk_seconds=0)["waveform"], whole)
    shorter = extract_in_chunks(model, processor, mixture, lips, 3.0, 0.5)
    np.testing.assert_array_equal(
        extract(mixture, lips=lips, chunk_seconds=3, overlap_seconds=0.5)["waveform"], shorter
    )
    one_pass = pipeline("target-speech-extraction", model=SHIPPED, device="cpu", chunk_seconds=0)
    np.testing.assert_array_equal(one_pass(mixture, lips=lips)["waveform"], whole)
    np.testing.assert_array_equal(one_pass(mixture, lips=lips, chunk_seconds=4)["waveform"], chunked)
    two_seconds = {"mixture": mixture[: 16000 * 2], "lips": lips[:50]}  # one chunk: the model's own output
    with torch.inference_mode():
        own = model(**processor(audio=two_seconds["mixture"], videos=[two_seconds["lips"]], return_tensors="pt"))
    np.testing.assert_array_equal(extract(two_seconds)["waveform"], own.waveform[0].numpy())
    with pytest.raises(ValueError, match=r"^example 0: the audio lasts 9.00 s but the lip clip has 150 frames"):
        extract(mixture, lips=lips[:150])  # a long mixture is checked as the processor checks a short one


def test_the_pipeline_refuses_a_chunking_that_cannot_be_joined(shipped):
    from transformers import pipeline

    extract = pipeline("target-speech-extraction", model=SHIPPED, device="cpu")
    mixture, lips = np.zeros(16000, np.float32), np.zeros((25, 48, 48), np.uint8)
    with pytest.raises(ValueError, match=r"^chunk_seconds=-1: a chunk must last more than 0 s$"):
        extract(mixture, lips=lips, chunk_seconds=-1)
    with pytest.raises(ValueError, match=r"chunk_seconds=2 and overlap_seconds=1.5: the overlap must be at least 0"):
        extract(mixture, lips=lips, chunk_seconds=2, overlap_seconds=1.5)
    with pytest.raises(ValueError, match=r"chunk_seconds=4.0 and overlap_seconds=3: the overlap must be at least 0"):
        pipeline("target-speech-extraction", model=SHIPPED, device="cpu", overlap_seconds=3)


def test_bad_chunking_and_short_lips_are_refused(shipped):
    model, processor = shipped
    mixture = np.zeros(16000 * 4, np.float32)
    lips = np.zeros((100, 48, 48), np.uint8)
    with pytest.raises(ValueError, match="the overlap must be at least 0 and at most half a chunk"):
        extract_in_chunks(model, processor, mixture, lips, chunk_seconds=2.0, overlap_seconds=1.5)
    with pytest.raises(ValueError, match=r"the lips cover 50 frames \(2.00 s\) but the mixture lasts 4.00 s"):
        extract_in_chunks(model, processor, mixture, lips[:50])


def _peak_memory_growth_kib(seconds: float, tmp_path) -> int:
    """Peak resident-set growth of chunked extraction of ``seconds`` of memory-mapped input, in a fresh process."""
    folder = tmp_path / f"long-{int(seconds)}"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "long_input_memory.py"), str(seconds), str(folder), SHIPPED],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["samples"] == measured["expected_samples"] == int(seconds * 16000)
    return measured["peak_growth_kib"]


def test_peak_memory_does_not_grow_with_duration(tmp_path):
    """20 s against 120 s of input (memory-mapped, output to a sink): extraction's peak memory (about 21 MB for
    usev-tiny) is the same within 10 MB."""
    short, long = _peak_memory_growth_kib(20, tmp_path), _peak_memory_growth_kib(120, tmp_path)
    assert long - short < 10 * 1024 and long < 100 * 1024, (short, long)


@pytest.mark.slow
def test_ten_minutes_run_in_bounded_memory(tmp_path):
    short, long = _peak_memory_growth_kib(60, tmp_path), _peak_memory_growth_kib(600, tmp_path)
    assert long - short < 10 * 1024 and long < 100 * 1024, (short, long)


# --- the pipeline ----------------------------------------------------------------------------------------------------
def test_pipeline_video_entry_gives_the_clis_voices(extracted, two_talkers):
    from transformers import pipeline

    _, summary = extracted
    voices = pipeline("target-speech-extraction", model=SHIPPED)(video=two_talkers[0])
    assert [voice["face"] for voice in voices] == [0, 1]
    for voice, face in zip(voices, summary["faces"]):
        written, rate = soundfile.read(face["wav"], dtype="float32")
        assert voice["sampling_rate"] == rate == 16000
        np.testing.assert_allclose(voice["waveform"], written, atol=1.0 / 32768 + 1e-6)
        assert voice["mouth_rois"].shape[1:] == (48, 48)
