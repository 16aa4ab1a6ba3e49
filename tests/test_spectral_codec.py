"""The STFT front-end (``encoder_type="stft"``): it is torch's STFT, its decoder inverts it exactly, padding-safe
framing, the complex mask rule, its ideal ratio mask, and the config's errors."""

from __future__ import annotations

import pytest
import torch

from modeling_elegance import UsevForTargetSpeechExtraction, preset_config
from modeling_elegance.spectral_codec import StftDecoder, StftEncoder
from training.evaluation.scoring import oracle_estimate


@pytest.mark.parametrize("n_fft, hop", [(512, 128), (256, 64), (64, 32)])
@pytest.mark.parametrize("samples", [1000, 4096, 4097, 16000])
def test_decoder_inverts_the_encoder(n_fft, hop, samples):
    torch.manual_seed(samples)
    waveform = torch.randn(2, samples)
    encoder, decoder = StftEncoder(n_fft=n_fft, hop=hop), StftDecoder(n_fft=n_fft, hop=hop)
    encoded = encoder(waveform)
    assert encoded.shape == (2, 2 * (n_fft // 2 + 1), encoder.num_frames(samples))
    torch.testing.assert_close(decoder(encoded, samples), waveform, atol=1e-5, rtol=1e-5)


def test_encoder_is_torch_stft_with_zero_padding_and_frames_up_to_the_last_sample():
    waveform = torch.randn(1, 5000)
    encoder = StftEncoder(n_fft=512, hop=128)
    reference = torch.stft(
        waveform, 512, 128, window=torch.hann_window(512), center=True, pad_mode="constant", return_complex=True
    )
    encoded = encoder(waveform)
    # torch keeps frames whose centre lies in the signal (5000 // 128 + 1 = 40); ours also the two after, whose
    # windows still reach samples 4864..4999, so every sample has the same frames in a padded batch as alone
    assert reference.shape[-1] == 40 and encoded.shape[-1] == encoder.num_frames(5000) == 42
    torch.testing.assert_close(encoded[:, :257, :40], reference.real, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(encoded[:, 257:, :40], reference.imag, atol=1e-4, rtol=1e-4)
    assert int(encoder.num_frames(torch.tensor([5000]))[0]) == 42


def test_the_mask_is_a_complex_product():
    encoded, mask = torch.randn(1, 2 * 33, 7), torch.randn(1, 2 * 33, 7)
    as_complex = lambda x: torch.complex(*x.chunk(2, dim=1))  # noqa: E731
    product = as_complex(StftEncoder.apply_mask(encoded, mask))
    torch.testing.assert_close(product, as_complex(encoded) * as_complex(mask))


def test_oracle_on_the_stft_is_the_magnitude_ratio_mask_with_the_mixture_phase():
    config = preset_config("usev-tiny", lip_input="embeddings", encoder_type="stft", encoder_kernel_size=256)
    model = UsevForTargetSpeechExtraction(config).eval()
    torch.manual_seed(0)
    target, rest = torch.randn(1, 8000), torch.randn(1, 8000)
    mixture = target + rest
    window = torch.hann_window(256)
    spectrum = lambda x: torch.stft(x, 256, 64, window=window, pad_mode="constant", return_complex=True)  # noqa: E731
    ratio = spectrum(target).abs() / (spectrum(target).abs() + spectrum(rest).abs())
    reference = torch.istft(spectrum(mixture) * ratio, 256, 64, window=window, length=8000)
    estimate = oracle_estimate(model, mixture, target)
    # the two differ only in the last 128 samples, where torch has fewer frames
    torch.testing.assert_close(estimate[:, :7800], reference[:, :7800], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"encoder_type": "mel"}, "encoder_type must be one of ('learned', 'stft'), got 'mel'"),
        (
            {"encoder_hop_size": 10},
            "the learned encoder's hop is half its window (40 samples), got encoder_hop_size=10; leave "
            "encoder_hop_size unset or use encoder_type='stft'",
        ),
        (
            {"encoder_type": "stft", "encoder_kernel_size": 512, "encoder_hop_size": 300},
            "the STFT hop must divide its window and be at most half of it; got encoder_hop_size=300 for "
            "encoder_kernel_size=512 (e.g. 128 for 512)",
        ),
    ],
)
def test_encoder_settings_errors(overrides, message):
    with pytest.raises(ValueError) as error:
        preset_config("usev-tiny", **overrides)
    assert str(error.value) == message


def test_stft_frame_rate_is_the_hop():
    config = preset_config("usev-tiny", encoder_type="stft", encoder_kernel_size=512)
    assert config.encoder_stride == 128
    assert (
        preset_config("usev-tiny", encoder_type="stft", encoder_kernel_size=512, encoder_hop_size=256).encoder_stride
        == 256
    )
    assert preset_config("usev-tiny").encoder_stride == 40
