"""The selective scan of AV-Mamba: the chunked scan against the sequential recurrence, in values and gradients."""

from __future__ import annotations

import pytest
import torch

from modeling_elegance.selective_scan import selective_scan, selective_scan_reference


@pytest.mark.parametrize("shape", [(3, 1, 4, 2), (2, 37, 8, 4), (3, 250, 16, 16), (64, 60, 32, 8)])
def test_chunked_scan_matches_the_sequential_recurrence(shape):
    batch, frames, channels, states = shape
    generator = torch.Generator().manual_seed(sum(shape))
    u = torch.randn(batch, frames, channels, generator=generator)
    delta = torch.nn.functional.softplus(torch.randn(batch, frames, channels, generator=generator))
    A = -torch.rand(channels, states, generator=generator) * 4
    B = torch.randn(batch, frames, states, generator=generator)
    C = torch.randn(batch, frames, states, generator=generator)
    D = torch.randn(channels, generator=generator)
    tensors = [tensor.requires_grad_() for tensor in (u, delta, A, B, C, D)]
    fast, reference = selective_scan(*tensors), selective_scan_reference(*tensors)
    scale = reference.abs().max()
    torch.testing.assert_close(fast / scale, reference / scale, atol=1e-5, rtol=0)
    grad_output = torch.randn(fast.shape, generator=generator)
    fast_grads = torch.autograd.grad(fast, tensors, grad_output)
    reference_grads = torch.autograd.grad(reference, tensors, grad_output)
    for name, got, expected in zip("u delta A B C D".split(), fast_grads, reference_grads):
        scale = expected.abs().max().clamp_min(1.0)  # gradient of A is exactly 0 with a single frame
        torch.testing.assert_close(got / scale, expected / scale, atol=1e-5, rtol=0, msg=f"gradient of {name}")


def test_scan_row_blocks_and_inference_mode_give_the_same_result(monkeypatch):
    import modeling_elegance.selective_scan as scan

    generator = torch.Generator().manual_seed(3)
    u, delta = torch.randn(9, 40, 8, generator=generator), torch.rand(9, 40, 8, generator=generator)
    A, D = -torch.rand(8, 4, generator=generator), torch.randn(8, generator=generator)
    B, C = torch.randn(9, 40, 4, generator=generator), torch.randn(9, 40, 4, generator=generator)
    whole = scan.selective_scan(u, delta, A, B, C, D)
    monkeypatch.setattr(scan, "_CHUNK_ELEMENTS", 16 * 8 * 4 * 2)  # blocks of 2 rows, chunks of 16 frames
    assert len(scan._row_blocks(9, 8, 4)) == 5
    with torch.inference_mode():
        blocked = scan.selective_scan(u, delta, A, B, C, D)
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(blocked, scan.selective_scan_reference(u, delta, A, B, C, D), atol=1e-5, rtol=1e-5)


def test_scan_runs_in_float32_under_bf16_autocast():
    u, delta = torch.randn(2, 20, 8), torch.rand(2, 20, 8)
    A, B, C, D = -torch.rand(8, 4), torch.randn(2, 20, 4), torch.randn(2, 20, 4), torch.randn(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = selective_scan(u.bfloat16(), delta, A, B, C, D)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(
        y.float(), selective_scan_reference(u.bfloat16().float(), delta, A, B, C, D), atol=0.05, rtol=0.02
    )
