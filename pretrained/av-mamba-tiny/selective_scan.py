"""Mamba's selective scan, fast on a CPU: a chunked scan inside a custom autograd function.

The scan computes, for every batch row, channel ``d`` and state ``n``::

    h[t] = exp(delta[t, d] * A[d, n]) * h[t - 1] + delta[t, d] * B[t, n] * u[t, d]
    y[t, d] = sum_n C[t, n] * h[t, d, n] + D[d] * u[t, d]

transformers' fallback without `mamba_ssm` discretises the whole sequence into ``(batch, channels, frames,
states)`` tensors and then loops over frames under autograd, one graph node per frame and operation. Here, as in
`mamba_ssm`'s kernel, time is cut into chunks small enough to stay in the CPU cache: a chunk is discretised, its
states are run forward (all rows and channels at once, in place), its outputs are contracted, and its states are
dropped; only the state entering each chunk is kept. The backward pass walks the chunks in reverse, recomputes
each chunk's states from its entry state, runs the adjoint recurrence ``g[t] = C[t] grad_y[t] + a[t + 1] g[t + 1]``
and reduces the chunk's gradients. No ``(batch, frames, channels, states)`` tensor is ever materialised, so memory
stays at ``(batch, chunks, channels, states)`` for training (chunks of at least 16 frames) and at one chunk for
inference, even on a 60 s input, and there is no per-frame autograd.

On a GPU with `mamba_ssm` installed, its fused kernel is used instead.
"""

from __future__ import annotations

import torch

try:  # pragma: no cover - needs CUDA
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_ssm_selective_scan
except ImportError:
    _mamba_ssm_selective_scan = None

# elements of a chunk's (batch, chunk frames, channels, states) temporaries: about 2 MB in float32, cache-sized
_CHUNK_ELEMENTS = 1 << 19
# a chunk spans at least this many frames: the entry states kept for backward are at most 1/16 of all states
_MIN_CHUNK_FRAMES = 16


def _row_blocks(rows: int, channels: int, states: int) -> list[slice]:
    size = max(1, _CHUNK_ELEMENTS // (_MIN_CHUNK_FRAMES * channels * states))
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def _chunks(frames: int, rows: int, channels: int, states: int) -> list[slice]:
    length = max(1, min(frames, _CHUNK_ELEMENTS // max(1, rows * channels * states)))
    return [slice(start, min(start + length, frames)) for start in range(0, frames, length)]


def _chunk_states(u, delta, A, B, entry_state):
    """The decays ``a`` and the states ``h`` of one chunk, both ``(batch, chunk frames, channels, states)``."""
    decay = torch.exp(delta.unsqueeze(-1) * A)
    states = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # the inputs, turned into the states in place
    states[:, 0].addcmul_(decay[:, 0], entry_state)
    for step in range(1, states.shape[1]):
        states[:, step].addcmul_(decay[:, step], states[:, step - 1])
    return decay, states


class _ChunkedSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D):
        rows, frames, channels = u.shape
        chunks = _chunks(frames, rows, channels, A.shape[-1])
        y = torch.empty_like(u)
        state = u.new_zeros(rows, channels, A.shape[-1])
        entry_states = []
        for chunk in chunks:
            entry_states.append(state)
            _, states = _chunk_states(u[:, chunk], delta[:, chunk], A, B[:, chunk], state)
            y[:, chunk] = torch.einsum("btdn,btn->btd", states, C[:, chunk])
            state = states[:, -1].clone()
        y.addcmul_(u, D)
        ctx.chunks = chunks
        # entry states are only needed by backward: not kept at inference
        kept = torch.stack(entry_states, dim=1) if any(ctx.needs_input_grad) else None
        ctx.save_for_backward(u, delta, A, B, C, D, kept)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        u, delta, A, B, C, D, entry_states = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
        grad_B, grad_C = torch.empty_like(B), torch.empty_like(C)
        grad_A = torch.zeros_like(A)
        # dL/dh[t] reaching the last frame of a chunk from the frames after it: a[t + 1] g[t + 1]
        incoming = torch.zeros_like(entry_states[:, 0])
        for index in reversed(range(len(ctx.chunks))):
            chunk = ctx.chunks[index]
            u_, delta_, B_, C_, grad_y_ = u[:, chunk], delta[:, chunk], B[:, chunk], C[:, chunk], grad_y[:, chunk]
            entry_state = entry_states[:, index]
            decay, states = _chunk_states(u_, delta_, A, B_, entry_state)
            grad_C[:, chunk] = torch.einsum("btdn,btd->btn", states, grad_y_)
            grad_states = grad_y_.unsqueeze(-1) * C_.unsqueeze(2)
            grad_states[:, -1].add_(incoming)
            for step in reversed(range(grad_states.shape[1] - 1)):
                grad_states[:, step].addcmul_(decay[:, step + 1], grad_states[:, step + 1])
            incoming = decay[:, 0] * grad_states[:, 0]
            previous_states = torch.cat([entry_state.unsqueeze(1), states[:, :-1]], dim=1)
            grad_log_decay = grad_states * previous_states * decay
            grad_input = torch.einsum("btdn,btn->btd", grad_states, B_)
            grad_delta[:, chunk] = torch.einsum("btdn,dn->btd", grad_log_decay, A) + grad_input * u_
            grad_A += torch.einsum("btdn,btd->dn", grad_log_decay, delta_)
            grad_B[:, chunk] = torch.einsum("btdn,btd->btn", grad_states, delta_ * u_)
            grad_u[:, chunk] = grad_input * delta_
        grad_u.addcmul_(grad_y, D)
        grad_D = (grad_y * u).sum(dim=(0, 1))
        return grad_u, grad_delta, grad_A, grad_B, grad_C, grad_D


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor
) -> torch.Tensor:
    r"""Mamba's selective scan.

    Args:
        u: ``(batch, frames, channels)`` input.
        delta: ``(batch, frames, channels)`` positive step sizes (after softplus).
        A: ``(channels, states)`` negative state matrix diagonal.
        B, C: ``(batch, frames, states)`` input and output projections.
        D: ``(channels,)`` skip weight.

    Returns:
        ``(batch, frames, channels)``. Computed in float32 whatever the autocast dtype, like `mamba_ssm`.
    """
    input_dtype = u.dtype
    if u.is_cuda and _mamba_ssm_selective_scan is not None:  # pragma: no cover - needs CUDA and mamba_ssm
        return _mamba_ssm_selective_scan(
            u.transpose(1, 2), delta.transpose(1, 2), A.float(), B.transpose(1, 2), C.transpose(1, 2), D.float()
        ).transpose(1, 2)
    with torch.autocast(u.device.type, enabled=False):
        u, delta, A, B, C, D = [tensor.float().contiguous() for tensor in (u, delta, A, B, C, D)]
        # rows in blocks, so that a chunk of a long or wide input still stays cache-sized
        blocks = _row_blocks(u.shape[0], u.shape[2], A.shape[1])
        outputs = [_ChunkedSelectiveScan.apply(u[rows], delta[rows], A, B[rows], C[rows], D) for rows in blocks]
        return (outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)).to(input_dtype)


def selective_scan_reference(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor
) -> torch.Tensor:
    """The same scan, one frame at a time with autograd: the definition the fast scan is tested against."""
    state = u.new_zeros(u.shape[0], u.shape[2], A.shape[1])
    outputs = []
    for t in range(u.shape[1]):
        state = torch.exp(delta[:, t, :, None] * A) * state + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        outputs.append(torch.einsum("bdn,bn->bd", state, C[:, t]))
    return torch.stack(outputs, dim=1) + u * D
