"""Sound for transformers: Whisper's log-mel spectrogram, written out, and generated sounds.

A waveform (samples at ``sampling_rate`` Hz) becomes an image with frequency on one axis and time on
the other, which a Vision Transformer reads as patches (the Audio Spectrogram Transformer):

    1. frames: pad ``n_fft // 2`` samples at each end (reflection), cut windows of ``n_fft``
       samples every ``hop`` samples, multiply each by a (periodic) Hann window;
    2. power spectrum: |rfft(frame)|², ``n_fft // 2 + 1`` frequency bins per frame;
    3. mel filter bank: ``n_mels`` triangles evenly spaced on the mel scale (Slaney's: linear below
       1 kHz, logarithmic above), each normalised to unit area (Slaney norm): power in mel bands;
    4. Whisper's log compression: log10 (floor 1e-10), values more than 8 (80 dB) below the
       maximum raised to it, then (x + 4) / 4.

Whisper drops the last frame; so do we. :func:`log_mel` equals transformers'
``WhisperFeatureExtractor`` (with ``feature_size=n_mels``) to float32 rounding
(tests/test_audio.py states the tolerance).
"""

from __future__ import annotations

import math

import torch

SAMPLING_RATE = 16_000


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale: 3f/200 below 1 kHz, then 15 + 27·ln(f/1000)/ln(6.4)."""
    f = torch.as_tensor(f, dtype=torch.float64)
    log_part = 15.0 + 27.0 * torch.log(f.clamp_min(1e-10) / 1000.0) / math.log(6.4)
    return torch.where(f >= 1000.0, log_part, 3.0 * f / 200.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`hz_to_mel`."""
    m = torch.as_tensor(m, dtype=torch.float64)
    return torch.where(m >= 15.0, 1000.0 * torch.exp(math.log(6.4) * (m - 15.0) / 27.0), 200.0 * m / 3.0)


def mel_filter_bank(n_freqs: int, n_mels: int, sampling_rate: int = SAMPLING_RATE,
                    f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """(n_freqs, n_mels) triangular filters, Slaney-normalised (each row of the transpose has
    area 2 / (its width in Hz)), for FFT bins evenly spaced from 0 to sampling_rate / 2."""
    if not isinstance(n_mels, int) or n_mels < 1:
        raise ValueError(f"n_mels: expected an int >= 1, got {n_mels!r}")
    if not isinstance(n_freqs, int) or n_freqs < 2:
        raise ValueError(f"n_freqs: expected an int >= 2, got {n_freqs!r}")
    f_max = sampling_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sampling_rate / 2:
        raise ValueError(f"f_min, f_max: expected 0 <= f_min < f_max <= {sampling_rate / 2}, "
                         f"got {f_min}, {f_max}")
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                     dtype=torch.float64))
    freqs = torch.linspace(0, sampling_rate // 2, n_freqs, dtype=torch.float64)
    slopes = edges[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    width = edges.diff()
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    filters = torch.clamp(torch.minimum(down, up), min=0.0)
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


def frames(waveform: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(..., samples) -> (..., n_frames, n_fft): centred, reflection-padded windows (no weighting)."""
    padded = torch.nn.functional.pad(waveform.unsqueeze(-2), (n_fft // 2, n_fft // 2), mode="reflect")
    return padded.squeeze(-2).unfold(-1, n_fft, hop)


def power_spectrogram(waveform: torch.Tensor, n_fft: int = 400, hop: int = 160) -> torch.Tensor:
    """(..., samples) -> (..., n_fft // 2 + 1, n_frames): |FFT|² of Hann-windowed frames."""
    window = torch.hann_window(n_fft, periodic=True, dtype=waveform.dtype)
    spec = torch.fft.rfft(frames(waveform, n_fft, hop) * window, dim=-1)
    return (spec.abs() ** 2).transpose(-1, -2)


def log_mel(waveform: torch.Tensor, n_mels: int = 80, n_fft: int = 400, hop: int = 160,
            sampling_rate: int = SAMPLING_RATE) -> torch.Tensor:
    """Whisper's features: (samples,) or (batch, samples) -> (n_mels, frames) or (batch, n_mels,
    frames), with ``frames = samples // hop``; float32."""
    if not isinstance(waveform, torch.Tensor) or waveform.ndim not in (1, 2):
        raise ValueError(f"waveform: expected a tensor (samples,) or (batch, samples), got "
                         f"{tuple(getattr(waveform, 'shape', ())) or type(waveform).__name__}")
    if waveform.shape[-1] <= n_fft // 2:
        raise ValueError(f"waveform: expected more than n_fft // 2 = {n_fft // 2} samples (the "
                         f"reflection padding needs them), got {waveform.shape[-1]}")
    power = power_spectrogram(waveform.float(), n_fft, hop)[..., :-1]  # Whisper drops the last frame
    mel = (mel_filter_bank(n_fft // 2 + 1, n_mels, sampling_rate, 0.0, sampling_rate / 2).T.float()
           @ power)
    logs = mel.clamp_min(1e-10).log10()
    peak = logs.amax(dim=(-2, -1), keepdim=True)
    return (torch.maximum(logs, peak - 8.0) + 4.0) / 4.0


# ---- generated sounds ------------------------------------------------------------------------------

#: the classes of :func:`make_sounds`
SOUND_CLASSES: tuple[str, ...] = ("tone", "chord", "chirp up", "chirp down", "noise burst")


def sound(kind: str, n_samples: int, gen: torch.Generator, sampling_rate: int = SAMPLING_RATE,
          noise: float = 0.05) -> torch.Tensor:
    """One generated sound of class ``kind`` (one of SOUND_CLASSES), (n_samples,) float32.

    The event starts in the first quarter and lasts half to three quarters of the clip, with a
    random loudness (0.3 to 1.0) and frequencies: a tone (200 Hz to 4 kHz), a chord (two tones at
    least a fifth apart), a linear chirp up or down (spanning at least an octave between 300 Hz and
    6 kHz), or band-limited noise; then background white noise of standard deviation ``noise``.
    """
    if kind not in SOUND_CLASSES:
        raise ValueError(f"kind: expected one of {SOUND_CLASSES}, got {kind!r}")

    def u(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand((), generator=gen))

    t = torch.arange(n_samples, dtype=torch.float64) / sampling_rate
    dur = n_samples / sampling_rate
    start, length = u(0.0, 0.25) * dur, u(0.5, 0.75) * dur
    env = ((t >= start) & (t < start + length)).double()
    phase0 = u(0, 2 * math.pi)
    if kind == "tone":
        x = torch.sin(2 * math.pi * u(200, 4000) * t + phase0)
    elif kind == "chord":
        f = u(200, 2500)
        x = 0.5 * (torch.sin(2 * math.pi * f * t + phase0) + torch.sin(2 * math.pi * f * u(1.5, 2.5) * t))
    elif kind in ("chirp up", "chirp down"):
        lo = u(300, 2500)
        hi = u(2 * lo, 6000)
        f0, f1 = (lo, hi) if kind == "chirp up" else (hi, lo)
        tau = (t - start).clamp(min=0.0)
        x = torch.sin(2 * math.pi * (f0 * tau + (f1 - f0) * tau**2 / (2 * length)) + phase0)
    else:
        white = torch.randn(n_samples, generator=gen, dtype=torch.float64)
        spec = torch.fft.rfft(white)
        fr = torch.fft.rfftfreq(n_samples, 1 / sampling_rate)
        lo = u(200, 3000)
        spec[(fr < lo) | (fr > lo * u(1.5, 3.0))] = 0
        x = torch.fft.irfft(spec, n_samples)
        x = x / x.abs().max().clamp_min(1e-12)
    x = u(0.3, 1.0) * env * x + noise * torch.randn(n_samples, generator=gen, dtype=torch.float64)
    return x.float()


def make_sounds(n: int, seed: int, n_samples: int = 7680, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sounds with uniformly drawn classes: waveforms (n, n_samples), labels (n,) indexing
    SOUND_CLASSES."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(SOUND_CLASSES), (n,), generator=gen)
    waves = torch.stack([sound(SOUND_CLASSES[i], n_samples, gen, noise=noise) for i in labels.tolist()])
    return waves, labels


__all__ = ["SAMPLING_RATE", "SOUND_CLASSES", "frames", "hz_to_mel", "log_mel", "make_sounds",
           "mel_filter_bank", "mel_to_hz", "power_spectrogram", "sound"]
