"""The sound representation and sound files: mel pictures and back (to_grid/from_grid, Griffin-Lim), the filterbank,
the resampler, WAV writing byte for byte, and read_audio on many formats and on the files it must refuse."""
import math
import struct
import subprocess
import wave

import numpy as np
import pytest
import soundfile
import torch

from tetragen.errors import UserError
from tetragen.modalities.sound import audio
from tetragen.modalities.sound.audio import MelSettings

SETTINGS = MelSettings()
STEP = SETTINGS.db_range / 255


def _tone(freq, seconds=1.0, rate=16000, amplitude=0.5):
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def test_settings_make_64_by_64_pictures_and_round_trip_as_json():
    assert SETTINGS.frames == 64 and SETTINGS.n_mels == 64
    assert audio.log_mel(torch.zeros(3, SETTINGS.clip)).shape == (3, 64, 64)
    assert MelSettings.from_dict(SETTINGS.to_dict()) == SETTINGS
    assert MelSettings.from_dict({**SETTINGS.to_dict(), "hop": 125}).frames == 128
    with pytest.raises(UserError, match="unknown field 'hops'"):
        MelSettings.from_dict({"hops": 100})
    with pytest.raises(UserError, match=r"f_max=9000.0 must be above f_min, at most 8000 Hz"):
        MelSettings.from_dict({"f_max": 9000.0})
    with pytest.raises(ValueError, match=r"expected pictures \(N, 64, 64, 1\), got \(2, 64, 64\)"):
        audio.from_grid(np.zeros((2, 64, 64), dtype=np.uint8))


def test_filterbank_rows_are_triangles_that_cover_the_spectrum_in_order():
    bank = audio.mel_filterbank(SETTINGS)
    assert bank.shape == (64, SETTINGS.n_fft // 2 + 1)
    assert (bank >= 0).all() and torch.allclose(bank.sum(1), torch.ones(64))
    centres = (bank * torch.arange(bank.shape[1])).sum(1)
    assert (centres.diff() > 0).all()                      # band m sits above band m - 1
    covered = bank.sum(0) > 0
    assert covered[1:-1].all()                             # every bin between DC and Nyquist is seen by a band
    assert (bank[:8] > 0).sum(1).max() < (bank[-8:] > 0).sum(1).min()  # low bands are narrower (mel scale)


def test_grid_round_trip_is_within_half_a_step_and_row_zero_is_the_highest_band():
    db = SETTINGS.db_min + torch.rand(4, 64, 64, generator=torch.Generator().manual_seed(0)) * SETTINGS.db_range
    grid = audio.to_grid(db, SETTINGS)
    assert grid.dtype == np.uint8 and grid.shape == (4, 64, 64, 1)
    error = (audio.from_grid(grid, SETTINGS) - db).abs().max().item()
    assert error <= STEP / 2 + 1e-4 and STEP < 0.32
    beyond = audio.to_grid(torch.tensor([[[SETTINGS.db_max + 20.0]], [[SETTINGS.db_min - 20.0]]]), SETTINGS)
    assert beyond.ravel().tolist() == [255, 0]
    high, low = audio.to_grid(audio.log_mel(torch.stack([_tone(7000), _tone(200)])), SETTINGS)[..., 0]
    assert high.mean(1).argmax() < 10 and low.mean(1).argmax() > 54


def test_loudness_is_kept_against_a_fixed_reference():
    word = _tone(440) * torch.linspace(0, 1, SETTINGS.clip)
    loud, quiet = audio.log_mel(torch.stack([word, word * 0.1]))
    assert torch.allclose((loud - quiet)[loud > SETTINGS.db_min], torch.tensor(20.0), atol=1e-3)


@pytest.fixture(scope="module")
def spoken_clip():
    """'seven' said by espeak-ng (installed through the same apt path as the spoken-words set), at 16 kHz."""
    from tetragen.modalities.sound.spoken_words import _pcm_of_wav, espeak
    data = subprocess.run([espeak(), "--stdout", "-v", "gmw/en-US+m3", "seven"], capture_output=True,
                          check=True).stdout
    x = torch.from_numpy(_pcm_of_wav(data).astype(np.float32) / 32768)
    x = audio.resample(x, 22050, 16000)
    return audio.fit_length(torch.roll(x, 2000), SETTINGS.clip)[None]


def test_griffin_lim_rebuilds_a_spoken_word_from_its_picture_deterministically(spoken_clip):
    picture = audio.from_grid(audio.to_grid(audio.log_mel(spoken_clip)))
    waves = audio.griffin_lim(picture, SETTINGS, seed=3)
    assert waves.shape == (1, SETTINGS.clip) and torch.isfinite(waves).all()
    assert audio.spectral_convergence(spoken_clip, waves).item() < 0.1
    assert audio.spectral_convergence(spoken_clip, audio.griffin_lim(picture, n_iter=0)).item() > 0.3
    assert torch.equal(waves, audio.griffin_lim(picture, SETTINGS, seed=3))
    assert not torch.equal(waves, audio.griffin_lim(picture, SETTINGS, seed=4))


def test_griffin_lim_is_batched_and_keeps_silence_silent(spoken_clip):
    batch = torch.cat([spoken_clip, torch.zeros_like(spoken_clip)])
    waves = audio.griffin_lim(audio.log_mel(batch), n_iter=4)
    alone = audio.griffin_lim(audio.log_mel(spoken_clip), n_iter=4)
    assert torch.allclose(waves[:1], alone, atol=1e-5)
    assert waves[1].abs().max() == 0


def test_resample_keeps_a_sines_frequency_and_amplitude_and_removes_what_would_alias():
    out = audio.resample(_tone(1000, rate=44100, amplitude=0.8), 44100, 16000)
    assert out.shape == (16000,)
    inner = out[1000:-1000].double()
    spectrum = torch.fft.rfft(inner * torch.hann_window(len(inner), dtype=torch.float64)).abs()
    assert abs(spectrum.argmax().item() * 16000 / len(inner) - 1000) < 2
    assert abs(inner.square().mean().sqrt().item() - 0.8 / math.sqrt(2)) < 0.005
    above_nyquist = audio.resample(_tone(10000, rate=44100, amplitude=0.8), 44100, 16000)
    assert above_nyquist[1000:-1000].abs().max() < 1e-3
    assert audio.resample(torch.zeros(2, 3, 22050), 22050, 16000).shape == (2, 3, 16000)
    odd = audio.resample(_tone(1000, rate=44101, amplitude=0.8), 44101, 16000)  # coprime rates: an approximate ratio
    assert odd.shape == (16000,) and abs(odd[1000:-1000].square().mean().sqrt().item() - 0.8 / math.sqrt(2)) < 0.005
    assert torch.equal(audio.resample(out, 16000, 16000), out)


def test_fit_length_cuts_and_pads_at_the_end():
    x = torch.arange(1, 6, dtype=torch.float32)
    assert audio.fit_length(x, 3).tolist() == [1, 2, 3]
    assert audio.fit_length(x, 7).tolist() == [1, 2, 3, 4, 5, 0, 0]
    assert audio.fit_length(x.numpy()[None], 7).tolist() == [[1, 2, 3, 4, 5, 0, 0]]


def test_wav_files_have_the_exact_16_bit_mono_header(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0], dtype=np.float32)
    path = tmp_path / "out.wav"
    audio.write_wav(path, x, 16000)
    data = path.read_bytes()
    pcm = struct.pack("<7h", 0, 16384, -16384, 32767, -32767, 32767, -32767)
    assert audio.pcm_bytes(x) == pcm and audio.pcm_bytes(torch.from_numpy(x)) == pcm
    header = (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(pcm)))
    assert data == header + pcm == audio.wav_bytes(x, 16000)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 7)
        assert w.readframes(7) == pcm
    assert list(tmp_path.iterdir()) == [path]             # the atomic write left no temporary behind


SINE = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)


@pytest.mark.parametrize("name, rate, channels, subtype, tolerance, note", [
    ("u8.wav", 16000, 1, "PCM_U8", 1 / 64, "read 8-bit unsigned samples as 32-bit float"),
    ("s24.wav", 16000, 1, "PCM_24", 1e-6, "read 24-bit samples as 32-bit float"),
    ("s24.flac", 16000, 1, "PCM_24", 1e-6, "read 24-bit samples as 32-bit float"),
    ("f32.wav", 16000, 1, "FLOAT", 0.0, None),
    ("f64.wav", 16000, 1, "DOUBLE", 1e-7, "read 64-bit float samples as 32-bit float"),
    ("six.wav", 16000, 6, "PCM_16", 1 / 16384, "mixed 6 channels to mono"),
    ("cd.wav", 44100, 2, "PCM_16", 1 / 16384, "mixed 2 channels to mono"),
    ("vorbis.ogg", 44100, 1, "VORBIS", 0.05, None),
])
def test_read_audio_reads_any_depth_rate_and_channel_count(tmp_path, name, rate, channels, subtype, tolerance, note):
    t = np.arange(rate // 2) / rate
    mono = 0.5 * np.sin(2 * np.pi * 440 * t)
    # channels that differ (a louder left, a silent one, an inverted one ...) whose mean is `mono`
    gains = np.array([2.0, 0.0, 1.5, 0.5, 1.0, 1.0][:channels]) if channels > 1 else np.ones(1)
    gains = gains * channels / gains.sum()
    soundfile.write(str(tmp_path / name), (mono[:, None] * gains[None]).astype(np.float64), rate, subtype=subtype)
    wave_, got_rate, notes = audio.read_audio(tmp_path / name)
    assert got_rate == rate and wave_.dtype == np.float32 and wave_.shape == mono.shape
    assert np.abs(wave_ - mono).max() <= tolerance + 1e-7
    assert notes == ([note] if note else [])


def _wav_header(rate, data_bytes, channels=1, bits=16):
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits) + b"data" +
            struct.pack("<I", data_bytes))


def test_read_audio_refuses_what_is_not_sound_in_one_line(tmp_path):
    cases = {"notes.wav": (b"this is a shopping list, not a sound\n" * 20, "not a sound file", "undecodable"),
             "empty.wav": (b"", r"empty \(0 bytes\)", "empty"),
             "onehz.wav": (_wav_header(1, 400) + bytes(400), "says 1 Hz, below 1000 Hz", "sample rate")}
    for name, (data, message, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(audio.AudioFileError, match=message) as caught:
            audio.read_audio(tmp_path / name)
        assert str(caught.value).startswith(str(tmp_path / name)) and "\n" not in str(caught.value)
        assert caught.value.reason == reason and isinstance(caught.value, UserError)


def test_an_over_long_file_is_refused_from_its_header_before_any_decoding(tmp_path, monkeypatch):
    path = tmp_path / "night.wav"
    n = 16000 * 2 * 3600 * 10                           # ten hours of 16-bit mono
    with open(path, "wb") as f:                          # a sparse file: the header and a hole, nothing on disk
        f.write(_wav_header(16000, n))
        f.truncate(44 + n)

    def no_decoding(*args, **kwargs):
        raise AssertionError("read_audio decoded an over-long file")
    monkeypatch.setattr(soundfile, "read", no_decoding)
    with pytest.raises(audio.AudioFileError, match=r"night.wav: 10 hours long by its header, over the 10-minute "
                                                   r"limit; cut it into clips first") as caught:
        audio.read_audio(path)
    assert caught.value.reason == "too long"
    monkeypatch.undo()
    seven = tmp_path / "seven.wav"
    soundfile.write(str(seven), np.tile(SINE, 14), 16000, subtype="PCM_16")
    assert len(audio.read_audio(seven)[0]) == 7 * 16000
    with pytest.raises(audio.AudioFileError, match="7 seconds long by its header, over the 6-second limit"):
        audio.read_audio(seven, max_seconds=6)


def test_stored_clips_are_checked_against_their_manifest(tmp_path):
    pcm = (np.arange(2 * 16000, dtype=np.int64) % 200 - 100).astype(np.int16).reshape(2, 16000)
    clips = [{"label": "a", "split": "train"}, {"label": "b", "split": "test"}]
    audio.write_clips(tmp_path, pcm, clips, {"classes": ["a", "b"]})
    loaded, doc = audio.read_clips(tmp_path, "it")
    assert np.array_equal(loaded, pcm) and doc["sha256_clips"] == audio.clips_digest(clips)
    train, test = audio.split_sets(loaded, doc)
    assert train.labels.tolist() == [0] and test.labels.tolist() == [1] and train.waves.dtype == np.float32
    damaged = pcm.copy()
    damaged[1, 1234] += 1
    np.save(tmp_path / audio.AUDIO_FILE, damaged, allow_pickle=False)
    with pytest.raises(UserError, match="sha256 differs"):
        audio.read_clips(tmp_path, "it")
