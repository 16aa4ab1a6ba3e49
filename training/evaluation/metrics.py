"""Speech quality metrics as plain functions (the `evaluate` modules in ``training/evaluation/metric_modules/`` wrap them).

Waveforms are ``(batch, samples)`` tensors or arrays of equal length (``(samples,)`` is one example); every
function returns one value per row. Conventions, the same in every function:

- a row whose reference is silent (energy below ``SILENCE_ENERGY``) has no defined score: NaN;
- SI-SDR and SDR of a silent estimate are ``-inf`` (a model that outputs nothing must not look average);
- estimate and reference of different lengths are an error (trim or pad them first; nothing is guessed).
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from modeling_elegance.losses import scale_invariant_sdr

SILENCE_ENERGY = 1e-10
SDR_FILTER_LENGTH = 512


def _as_rows(name: str, values) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).to(torch.float64)
    if tensor.dim() == 1:
        tensor = tensor[None]
    if tensor.dim() != 2:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected (samples,) or (batch, samples)")
    return tensor


def _pair(estimate, reference) -> tuple[torch.Tensor, torch.Tensor]:
    estimate, reference = _as_rows("estimate", estimate), _as_rows("reference", reference)
    if estimate.shape != reference.shape:
        raise ValueError(
            f"estimate has shape {tuple(estimate.shape)} but reference {tuple(reference.shape)}; they must have the "
            f"same number of rows and samples (trim both to the shorter, or pad the estimate with zeros)"
        )
    return estimate, reference


def _undefined(estimate: torch.Tensor, reference: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    scores = scores.clone()
    scores[estimate.pow(2).sum(-1) < SILENCE_ENERGY] = -math.inf
    scores[reference.pow(2).sum(-1) < SILENCE_ENERGY] = math.nan
    return scores


def si_sdr(estimate, reference) -> np.ndarray:
    """Scale-invariant SDR in dB (zero-mean signals, Le Roux et al. 2019), float64: the training loss's
    :func:`~modeling_elegance.losses.scale_invariant_sdr` without its epsilon, with the conventions above."""
    estimate, reference = _pair(estimate, reference)
    return _undefined(estimate, reference, scale_invariant_sdr(estimate, reference, eps=0.0)).numpy()


def solve_symmetric(matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``matrices @ x = vectors`` for symmetric positive (semi-)definite ``(batch, L, L)`` matrices, by Cholesky.

    Not `torch.linalg.solve`: its batched LU solve on more than one thread fails inside MKL on valid input with torch
    2.11 ("Intel oneMKL ERROR: Parameter 6 was incorrect on entry to DLASWP", then "Pivots given to lu_solve must all
    be greater or equal to 1"; pytorch/pytorch#142815, reproduced here on a batch of two identity matrices). An
    autocorrelation (Toeplitz) matrix is positive semi-definite, so Cholesky fits and needs no row swaps; a matrix
    that is only semi-definite falls back to least squares.
    """
    factor, info = torch.linalg.cholesky_ex(matrices)
    solution = torch.cholesky_solve(vectors[..., None], factor)[..., 0]
    singular = info != 0
    if singular.any():
        solution[singular] = torch.linalg.lstsq(matrices[singular], vectors[singular][..., None]).solution[..., 0]
    return solution


def sdr(estimate, reference, filter_length: int = SDR_FILTER_LENGTH) -> np.ndarray:
    """SDR in dB as BSS Eval defines it: the reference may be distorted by the best ``filter_length``-tap FIR
    filter before the rest counts as error (the definition of museval/torchmetrics' ``signal_distortion_ratio``)."""
    estimate, reference = _pair(estimate, reference)
    samples = reference.shape[-1]
    unit_reference = reference / reference.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unit_estimate = estimate / estimate.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    size = 1 << (samples + filter_length - 1).bit_length()
    reference_spectrum = torch.fft.rfft(unit_reference, n=size)
    autocorrelation = torch.fft.irfft(reference_spectrum.abs() ** 2, n=size)[..., :filter_length]
    crosscorrelation = torch.fft.irfft(reference_spectrum.conj() * torch.fft.rfft(unit_estimate, n=size), n=size)[
        ..., :filter_length
    ]
    lags = torch.arange(filter_length)
    # a silent reference has no filter to solve for (its score is NaN below): an identity keeps the solve regular
    autocorrelation[reference.pow(2).sum(-1) < SILENCE_ENERGY] = (lags == 0).to(autocorrelation.dtype)
    toeplitz = autocorrelation[..., (lags[:, None] - lags[None, :]).abs()]  # (batch, L, L)
    filter_taps = solve_symmetric(toeplitz, crosscorrelation)
    coherence = (crosscorrelation * filter_taps).sum(-1)  # energy of the filtered reference, unit-norm estimate
    # a perfect estimate leaves 1 - coherence at rounding level (possibly below 0): cap it at about 156 dB
    scores = 10 * torch.log10(coherence / (1 - coherence).clamp_min(torch.finfo(torch.float64).eps))
    return _undefined(estimate, reference, scores).numpy()


def pesq_wideband(estimate, reference, sampling_rate: int = 16000) -> np.ndarray:
    """Wide-band PESQ (ITU-T P.862.2, the `pesq` package), NaN where PESQ finds no speech in the reference."""
    from pesq import NoUtterancesError, pesq

    estimate, reference = _pair(estimate, reference)
    if sampling_rate != 16000:
        raise ValueError(f"wide-band PESQ needs 16000 Hz audio, got {sampling_rate} Hz; resample first")
    scores = []
    for est, ref in zip(estimate.numpy(), reference.numpy()):
        try:
            scores.append(pesq(sampling_rate, ref, est, "wb"))
        except NoUtterancesError:
            scores.append(math.nan)
    scores = np.asarray(scores, dtype=np.float64)
    scores[reference.pow(2).sum(-1).numpy() < SILENCE_ENERGY] = math.nan
    return scores


def stoi(estimate, reference, sampling_rate: int = 16000, extended: bool = False) -> np.ndarray:
    """STOI (or ESTOI with ``extended=True``) from `pystoi`, in [0, 1] (ESTOI may dip below 0)."""
    from pystoi import stoi as pystoi_stoi

    estimate, reference = _pair(estimate, reference)
    scores = torch.tensor(
        [
            pystoi_stoi(ref, est, sampling_rate, extended=extended)
            for est, ref in zip(estimate.numpy(), reference.numpy())
        ],
        dtype=torch.float64,
    )
    scores[reference.pow(2).sum(-1) < SILENCE_ENERGY] = math.nan
    return scores.numpy()


def normalize_text(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept)."""
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def word_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """``(edit distance in words, reference words)`` after :func:`normalize_text`, by jiwer."""
    import jiwer

    hyp, ref = normalize_text(hypothesis), normalize_text(reference)
    if not ref or not hyp:  # jiwer refuses empty references; an empty side is all insertions or all deletions
        return max(len(hyp), len(ref)), len(ref)
    alignment = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return alignment.substitutions + alignment.deletions + alignment.insertions, len(ref)


def character_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus CER after :func:`normalize_text` (words joined by one space): character edits over reference
    characters, by jiwer."""
    import jiwer

    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references; pass one per reference")
    pairs = [(" ".join(normalize_text(r)), " ".join(normalize_text(h))) for h, r in zip(hypotheses, references)]
    characters = sum(len(r) for r, _ in pairs)
    if characters == 0:
        raise ValueError("the references hold no characters; CER is undefined")
    errors = 0
    for reference, hypothesis in pairs:
        if not reference or not hypothesis:
            errors += max(len(reference), len(hypothesis))
        else:
            output = jiwer.process_characters(reference, hypothesis)
            errors += output.substitutions + output.deletions + output.insertions
    return errors / characters


def word_error_rate(hypotheses: list[str], references: list[str]) -> float:
    """Corpus WER: total word edits over total reference words."""
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references; pass one per reference")
    errors, words = (
        map(sum, zip(*(word_errors(h, r) for h, r in zip(hypotheses, references)))) if references else (0, 0)
    )
    if words == 0:
        raise ValueError("the references hold no words; WER is undefined")
    return errors / words


def improvement(metric, estimate, mixture, reference, **kwargs) -> np.ndarray:
    """``metric(estimate) - metric(mixture)`` against ``reference``: SI-SDRi with ``si_sdr``, SDRi with ``sdr``."""
    return metric(estimate, reference, **kwargs) - metric(mixture, reference, **kwargs)


def summarize_metric(metric, name: str, predictions, references, **kwargs) -> dict:
    """``{name: mean over defined rows, name + "_per_example": [...]}`` (what the `evaluate` modules return)."""
    scores = np.concatenate(
        [
            metric(np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64), **kwargs)
            for p, r in zip(predictions, references)
        ]
    )
    defined = scores[~np.isnan(scores)]
    return {name: float(defined.mean()) if len(defined) else math.nan, f"{name}_per_example": scores.tolist()}
