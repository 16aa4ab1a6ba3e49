"""Offline speech synthesis with espeak-ng (the library that `espeakng-loader` ships), through ctypes.

espeak-ng keeps global state that drifts from call to call (an utterance comes out a few samples longer or
shorter depending on what was spoken before it). So that a corpus does not depend on how its examples were shared
among workers, :func:`synthesize` loads a fresh copy of the library for every utterance and unloads it afterwards
(about 1.5 ms).

Every synthesis returns the waveform together with espeak's own phoneme and word events, which give the
timings that the lip renderer and the activity labels are built from.
"""

from __future__ import annotations

import _ctypes
import ctypes
from dataclasses import dataclass, field

import numpy as np

# espeak_EVENT_TYPE values (speak_lib.h)
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x1
_INITIALIZE_PHONEME_IPA = 0x2
_CHARS_UTF8 = 1
# espeak_PARAMETER values
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_PARAMETER_RANGE = 4


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_LIBC = ctypes.CDLL(None)
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@dataclass
class Phone:
    """One phone as espeak-ng spoke it: IPA symbol and its span in seconds."""

    symbol: str
    start: float
    end: float


@dataclass
class Word:
    word: str
    start: float
    end: float
    text_end: int  # character index just past the word in the synthesised text


@dataclass
class Utterance:
    """A synthesised utterance: mono float32 waveform in [-1, 1] at `sampling_rate`, with its timings."""

    text: str
    waveform: np.ndarray  # (samples,)
    sampling_rate: int
    phones: list[Phone] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sampling_rate


class _Espeak:
    """One loaded espeak-ng library; :meth:`close` unloads it so the next load starts from a clean state."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as error:  # pragma: no cover - a declared dependency
            raise ImportError("speech synthesis needs espeak-ng: pip install espeakng-loader") from error
        self.library = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.sampling_rate = self.library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
        )
        if self.sampling_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise with its data at {data_path.decode()}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        # keep a reference: ctypes frees the trampoline with the Python object
        self._callback = _SynthCallback(self._receive)
        self.library.espeak_SetSynthCallback(self._callback)
        self.library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    def close(self):
        self.library.espeak_Terminate()
        _ctypes.dlclose(self.library._handle)

    def _receive(self, samples, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (num_samples,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            self._events.append((event.type, event.audio_position, event.text_position, event.length, bytes(event.id)))
            index += 1
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> Utterance:
        # espeak draws breath noise from its own generator and libc's rand(), whose state is process-wide
        self.library.espeak_ng_SetRandSeed(0)
        _LIBC.srand(0)
        if self.library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}; voices look like 'en', 'en+f3', 'it+m2'")
        for parameter, value in ((_PARAMETER_RATE, rate), (_PARAMETER_PITCH, pitch), (_PARAMETER_RANGE, pitch_range)):
            self.library.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._events = [], []
        encoded = text.encode("utf-8")
        self.library.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.library.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        waveform = samples.astype(np.float32) / 32768.0
        duration = len(waveform) / self.sampling_rate
        return Utterance(
            text=text,
            waveform=waveform,
            sampling_rate=self.sampling_rate,
            phones=_phones_from_events(self._events, duration),
            words=_words_from_events(self._events, text, duration),
        )


def _phones_from_events(events, duration: float) -> list[Phone]:
    """Phoneme events give start times; a phone ends where the next event (phone or pause) starts."""
    marks = []
    for event_type, audio_position_ms, _, _, name in events:
        if event_type != _EVENT_PHONEME:
            continue
        symbol = name.split(b"\x00")[0].decode("utf-8", "replace")
        # '(en)'-style markers announce a language switch and are not sounds
        if symbol.startswith("("):
            continue
        marks.append((audio_position_ms / 1000.0, symbol))
    phones = []
    for index, (start, symbol) in enumerate(marks):
        end = marks[index + 1][0] if index + 1 < len(marks) else duration
        # empty names are pauses; they only bound the phone before them
        if symbol and end > start:
            phones.append(Phone(symbol, start, min(end, duration)))
    return phones


def _words_from_events(events, text: str, duration: float) -> list[Word]:
    starts = []
    for event_type, audio_position_ms, text_position, length, _ in events:
        if event_type == _EVENT_WORD:
            # text_position counts characters from 1
            first = text_position - 1
            starts.append((audio_position_ms / 1000.0, text[first : first + length], first + length))
    phones = _phones_from_events(events, duration)
    words = []
    for index, (start, word, text_end) in enumerate(starts):
        next_start = starts[index + 1][0] if index + 1 < len(starts) else duration
        # a word ends with its last sounding phone, so pauses after it are not counted as speech
        inside = [phone.end for phone in phones if start <= phone.start < next_start]
        end = max(inside) if inside else next_start
        words.append(Word(word.strip(), start, end, text_end))
    return words


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> Utterance:
    """Speak `text` with espeak-ng.

    Args:
        text: what to say (UTF-8).
        voice: espeak voice and variant, e.g. ``"en+m3"``, ``"it+f2"``.
        rate: words per minute (80-450).
        pitch: base pitch, 0-100.
        pitch_range: pitch variation, 0-100 (0 is monotone).

    Returns:
        The :class:`Utterance` at espeak-ng's native rate (22050 Hz), with phone and word timings in seconds.
    """
    if not text.strip():
        raise ValueError("cannot synthesise empty text")
    engine = _Espeak()
    try:
        return engine.speak(text, voice, rate, pitch, pitch_range)
    finally:
        engine.close()
