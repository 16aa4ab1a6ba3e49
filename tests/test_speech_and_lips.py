import numpy as np
import pytest

from processing.lip_rendering import REST, TRACK_RATE, articulation_tracks, viseme_targets
from processing.speech_synthesis import Phone, synthesize
from processing.visual_impairment import impair_lips


def test_synthesis_gives_timed_phones_and_words():
    utterance = synthesize("Good morning, how are you?", voice="en+m3")
    assert utterance.sampling_rate == 22050 and 1.0 < utterance.duration < 3.0
    assert [w.word for w in utterance.words] == ["Good", "morning", "how", "are", "you"]
    starts = [p.start for p in utterance.phones]
    assert starts == sorted(starts) and utterance.phones[-1].end <= utterance.duration
    assert all(w.start < w.end for w in utterance.words)


def test_synthesis_does_not_depend_on_what_was_said_before():
    first = synthesize("My printer is not printing.", "en+f2", 175, 39, 51)
    synthesize("Sai, il grande ferro!", "it+m3", 190, 70, 20)
    again = synthesize("My printer is not printing.", "en+f2", 175, 39, 51)
    np.testing.assert_array_equal(first.waveform, again.waveform)


def test_unknown_voice_and_empty_text_are_refused():
    with pytest.raises(ValueError, match="espeak-ng has no voice 'xx\\+nobody'"):
        synthesize("hello", voice="xx+nobody")
    with pytest.raises(ValueError, match="cannot synthesise empty text"):
        synthesize("  ")


def test_visemes_of_characteristic_phones():
    def opening(symbol):
        return viseme_targets(symbol)[0][0]

    assert opening("m") == 0.0 and opening("p") == 0.0
    assert opening("ˈa") > 0.8 > opening("ə") > opening("iː")
    assert viseme_targets("uː")[0][2] == 1.0  # rounded
    assert len(viseme_targets("aɪ")) == 2 and len(viseme_targets("tʃ")) == 1


def test_frame_k_shows_the_viseme_active_at_k_over_fps():
    tracks = articulation_tracks([Phone("a", 1.0, 1.4)], duration=2.0)

    def at(seconds):
        return tracks[int(round(seconds * TRACK_RATE)), 0]

    assert at(1.2) > 0.85
    assert at(0.5) == pytest.approx(REST[0]) and at(1.8) == pytest.approx(REST[0])
    # coarticulation: the mouth is already opening just before the vowel
    assert REST[0] < at(0.97) < at(1.2)


def test_impairment_spans_the_requested_ratio():
    lips = np.full((50, 16, 16), 100, dtype=np.uint8)
    rng = np.random.default_rng(0)
    masked, mask = impair_lips(lips, "full_mask", 0.4, rng)
    assert mask.sum() == 20 and np.all(masked[mask == 1] == 0) and np.all(masked[mask == 0] == 100)
    low, mask = impair_lips(
        np.random.default_rng(1).integers(0, 255, (50, 16, 16), dtype=np.uint8), "low_resolution", 1.0, rng
    )
    assert mask.sum() == 50 and np.all(low[:, :4, :4] == low[:, 0:1, 0:1])
    with pytest.raises(ValueError, match="unknown impairment 'blur'"):
        impair_lips(lips, "blur", 0.5, rng)
