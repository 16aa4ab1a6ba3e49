"""Face tracks over a whole video: dlib detection every few frames, landmark following in between, identities kept.

- **Detection** (dlib's HOG frontal face detector, from ``dlib-bin``) runs every ``detect_every`` frames, on a copy
  scaled down to at most ``detection_height`` rows, since it costs about 20 ms a frame on a 360 x 288 frame and
  faces in talking-head video are large.
- **Following.** Between detections each track's 68 landmarks (``face-recognition-models``' predictor, about 4 ms
  a face) are fitted in the box of its previous frame's landmarks, so every frame of a track has landmarks.
- **Association.** At each detection, detections and followed tracks are matched by box overlap (Hungarian
  assignment, scipy). A track that no detection confirms loses the frames it followed since its last
  confirmation (they may have drifted off a face that left) and is *lost*.
- **Identity** through misses and crossings: each track keeps a face descriptor (dlib's ResNet, about 130 ms a
  face, so only at a track's first detections and when a decision needs it). A new detection that resembles a lost
  track (descriptor distance under ``identity_threshold``, dlib's own 0.6) continues it instead of starting a new
  one. Where a detection overlaps more than one track (faces crossing), descriptors decide the match.

The landmark model (iBUG 300-W training data) is for non-commercial use; see the README.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

MOUTH = slice(48, 68)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
MOUTH_CORNERS = (48, 54)


def _dlib_models():
    try:
        import dlib
        import face_recognition_models
    except ImportError as error:
        raise ImportError(
            "face tracking needs dlib and the face-recognition models: pip install 'elegance[video]' "
            "(installs av, dlib-bin and face-recognition-models)"
        ) from error
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(face_recognition_models.pose_predictor_model_location()),
        dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location()),
    )


def _iou(box_a, box_b) -> float:
    left, top = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    right, bottom = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    area = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1]) - inter
    return inter / area if area > 0 else 0.0


def _box_of_landmarks(points: np.ndarray) -> tuple[float, float, float, float]:
    """A detector-like box around 68 landmarks (the detector's box is about the landmarks' extent, a little wider)."""
    left, top = points.min(0)
    right, bottom = points.max(0)
    margin = 0.05 * (right - left)
    return (left - margin, top - margin, right + margin, bottom + margin)


@dataclass
class FaceTrack:
    """One face over the video: landmarks ``(68, 2)`` (x, y pixels) at each frame where it was found."""

    track_id: int
    landmarks: dict[int, np.ndarray] = field(default_factory=dict)
    descriptors: list[np.ndarray] = field(default_factory=list)
    last_confirmed: int = -1  # last frame a detection confirmed
    last_frame: int = -1  # latest frame with landmarks (kept, not searched for: tracks of an hour hold 90,000)
    last_described: int = -(10**9)
    lost: bool = False

    @property
    def descriptor(self) -> np.ndarray | None:
        return np.mean(self.descriptors, axis=0) if self.descriptors else None

    @property
    def current_box(self):
        return _box_of_landmarks(self.landmarks[self.last_frame])

    def coverage(self, frames: int) -> float:
        """Share of the video's frames where this face has landmarks."""
        return len(self.landmarks) / frames if frames else 0.0

    def record(self, index: int, points: np.ndarray) -> None:
        self.landmarks[index] = points
        self.last_frame = index

    def drop_unconfirmed(self) -> None:
        for index in range(self.last_confirmed + 1, self.last_frame + 1):
            self.landmarks.pop(index, None)
        self.last_frame = self.last_confirmed


class FaceTracker:
    """Feed frames in order with :meth:`update`; :meth:`tracks` returns the faces found.

    Args:
        fps: frame rate of the frames fed (sets the descriptor refresh interval).
        detect_every: run the face detector on every ``detect_every``-th frame.
        detection_height: scale frames taller than this down before detecting.
        identity_threshold: largest descriptor distance at which two faces are the same person.
        descriptor_samples: descriptors averaged into a track's identity, taken a second apart.
    """

    def __init__(
        self,
        fps: float = 25.0,
        detect_every: int = 5,
        detection_height: int = 480,
        identity_threshold: float = 0.6,
        descriptor_samples: int = 3,
    ):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.dlib, self.detector, self.predictor, self.recognizer = _dlib_models()
        self.fps = fps
        self.detect_every = detect_every
        self.detection_height = detection_height
        self.identity_threshold = identity_threshold
        self.descriptor_samples = descriptor_samples
        self._tracks: list[FaceTrack] = []
        self.seconds = {"detection": 0.0, "landmarks": 0.0, "descriptors": 0.0}  # time spent in each dlib model

    # --- dlib wrappers -------------------------------------------------------------------------------------------
    def _rectangle(self, box):
        return self.dlib.rectangle(*(int(round(value)) for value in box))

    def _fit_landmarks(self, gray: np.ndarray, box) -> tuple[np.ndarray, object]:
        started = time.perf_counter()
        shape = self.predictor(gray, self._rectangle(box))
        points = np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float32)
        self.seconds["landmarks"] += time.perf_counter() - started
        return points, shape

    def _describe(self, gray: np.ndarray, shape) -> np.ndarray:
        # the descriptor network takes RGB; grey replicated to three channels keeps the same person within 0.3 and
        # different GRID speakers 0.7 to 0.95 apart (dlib's threshold: 0.6)
        started = time.perf_counter()
        rgb = np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=-1))
        descriptor = np.asarray(self.recognizer.compute_face_descriptor(rgb, shape), dtype=np.float32)
        self.seconds["descriptors"] += time.perf_counter() - started
        return descriptor

    def _detect(self, gray: np.ndarray) -> list[tuple[float, float, float, float]]:
        started = time.perf_counter()
        scale = min(1.0, self.detection_height / gray.shape[0])
        image = gray if scale == 1.0 else _downscale(gray, scale)
        boxes = [
            (rect.left() / scale, rect.top() / scale, rect.right() / scale, rect.bottom() / scale)
            for rect in self.detector(image, 0)
        ]
        self.seconds["detection"] += time.perf_counter() - started
        return boxes

    # --- tracking ------------------------------------------------------------------------------------------------
    def update(self, index: int, gray: np.ndarray) -> None:
        """Process frame ``index`` (``(height, width)`` uint8 grayscale); frames must come in order."""
        following = [track for track in self._tracks if not track.lost]
        if index % self.detect_every != 0:
            for track in following:
                track.record(index, self._fit_landmarks(gray, track.current_box)[0])
            return
        # a detection frame: tracks are matched by their previous frame's box and take the detection's landmarks
        detections = self._detect(gray)
        fitted = [self._fit_landmarks(gray, box) for box in detections]
        matches = self._associate(following, detections, fitted, gray)
        matched_tracks = set()
        for track, detection in matches:
            self._confirm(track, index, fitted[detection], gray)
            matched_tracks.add(track.track_id)
        for track in following:
            if track.track_id not in matched_tracks:
                track.drop_unconfirmed()
                track.lost = True
        matched_detections = {detection for _, detection in matches}
        for detection in range(len(detections)):
            if detection not in matched_detections:
                points, shape = fitted[detection]
                descriptor = self._describe(gray, shape)
                track = self._relink(descriptor) or self._new_track()
                track.lost = False
                if len(track.descriptors) < self.descriptor_samples:
                    track.descriptors.append(descriptor)
                    track.last_described = index
                self._confirm(track, index, fitted[detection], gray)

    def _associate(self, tracks, detections, fitted, gray) -> list[tuple[FaceTrack, int]]:
        if not tracks or not detections:
            return []
        from scipy.optimize import linear_sum_assignment

        track_boxes = [track.current_box for track in tracks]
        overlap = np.array([[_iou(track_box, box) for box in detections] for track_box in track_boxes])
        cost = 1.0 - overlap
        crowded = (overlap > 0.1).sum(0) > 1  # a detection overlapping several tracks: faces crossing
        for detection in np.flatnonzero(crowded):
            descriptor = self._describe(gray, fitted[detection][1])
            for row, track in enumerate(tracks):
                if track.descriptor is not None:
                    cost[row, detection] = np.linalg.norm(track.descriptor - descriptor)
        rows, columns = linear_sum_assignment(cost)
        return [
            (tracks[row], column)
            for row, column in zip(rows, columns)
            if overlap[row, column] > 0.3 or (crowded[column] and cost[row, column] < self.identity_threshold)
        ]

    def _confirm(self, track: FaceTrack, index: int, fitted, gray) -> None:
        points, shape = fitted
        track.record(index, points)
        track.last_confirmed = index
        if len(track.descriptors) < self.descriptor_samples and index - track.last_described >= self.fps:
            track.descriptors.append(self._describe(gray, shape))
            track.last_described = index

    def _relink(self, descriptor: np.ndarray) -> FaceTrack | None:
        candidates = [(np.linalg.norm(track.descriptor - descriptor), track) for track in self._tracks if track.lost]
        candidates = [(distance, track) for distance, track in candidates if distance < self.identity_threshold]
        return min(candidates, key=lambda pair: pair[0])[1] if candidates else None

    def _new_track(self) -> FaceTrack:
        track = FaceTrack(track_id=len(self._tracks))
        self._tracks.append(track)
        return track

    def tracks(self) -> list[FaceTrack]:
        """The faces found, in order of first appearance. A lost track has already dropped the frames it followed
        after its last confirmation; a track still followed at the end keeps the last few frames after its last
        detection (fewer than ``detect_every``), which no later detection could confirm."""
        return [track for track in self._tracks if track.landmarks]


def _downscale(gray: np.ndarray, scale: float) -> np.ndarray:
    import torch

    height, width = gray.shape
    size = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    image = torch.from_numpy(gray).float()[None, None]
    image = torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    return np.ascontiguousarray(image[0, 0].round().clamp(0, 255).to(torch.uint8).numpy())
