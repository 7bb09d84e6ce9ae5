"""The decoding as an animation: one frame per decoder step, GIF and MP4, from the library and the command line."""

import numpy as np
import pytest
from PIL import Image, ImageChops

from engine.render.animation import animation_frames, save_animation
from engine.render.figures import ExportError
from engine.translator import Translator


@pytest.fixture(scope="module")
def trace(tiny_model_dir):
    return Translator.from_directory(tiny_model_dir, "cpu").trace("Le chat dort sur le canapé.")


def test_a_gif_has_one_frame_per_decoder_step_at_the_asked_size_and_rate(trace, tmp_path):
    path = save_animation(trace, tmp_path / "decoding.gif", fps=2.0, size=(480, 300))
    with Image.open(path) as gif:
        assert gif.n_frames == len(trace.out_ids)
        assert gif.size == (480, 300)
        assert gif.info["duration"] == 500


def test_frames_show_each_step_and_are_not_blank(trace):
    frames = animation_frames(trace, size=(320, 200))
    assert len(frames) == len(trace.out_ids) and {f.size for f in frames} == {(320, 200)}
    for frame in frames:
        assert len(np.unique(np.asarray(frame).reshape(-1, 3), axis=0)) > 20  # bars, text, axes
    differences = [ImageChops.difference(a, b).getbbox() for a, b in zip(frames, frames[1:], strict=False)]
    assert all(box is not None for box in differences)  # every step changes the picture


def test_an_mp4_has_one_frame_per_step(trace, tmp_path):
    import imageio_ffmpeg

    path = save_animation(trace, tmp_path / "decoding.mp4", size=(320, 200))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert tuple(meta["size"]) == (320, 200)
    assert sum(1 for _ in reader) == len(trace.out_ids)


def test_bad_requests_are_one_line_errors_and_leave_no_file(trace, tmp_path):
    with pytest.raises(ExportError, match=r"\.gif or \.mp4"):
        save_animation(trace, tmp_path / "decoding.png")
    with pytest.raises(ExportError, match="frame rate"):
        save_animation(trace, tmp_path / "decoding.gif", fps=0)
    with pytest.raises(ExportError, match="cannot write"):
        save_animation(trace, tmp_path / "missing" / "decoding.gif", size=(64, 40))
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_writes_the_animation(tiny_model_dir, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "decoding.gif"
    args = ["export", "Le chat dort.", "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*args, "--what", "animation", "--out", str(out), "--width", "400", "--fps", "4"]) == 0
    with Image.open(out) as gif:
        assert gif.size == (400, 250) and gif.info["duration"] == 250 and gif.n_frames > 1
    assert main([*args, "--what", "animation", "--out", str(tmp_path / "d.svg")]) == 2
    assert "an animation is written as .gif or .mp4" in capsys.readouterr().err
