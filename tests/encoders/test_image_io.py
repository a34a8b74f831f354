import io

import numpy as np
import pytest
import torch
from PIL import Image

from encoders import image_transform, load_image
from mm.errors import InputError


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_exif_orientation_is_honoured():
    img = Image.new("RGB", (40, 20), "red")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _png(img, format="JPEG", exif=exif)
    assert load_image(data).size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK", "1"])
def test_modes_become_rgb(mode):
    img = Image.new(mode, (8, 6))
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (8, 6)


def test_transparent_pixels_are_composited_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(_png(img)).getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    arr = np.zeros((4, 4), dtype=np.uint16)
    arr[:, 2:] = 65535
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = np.asarray(load_image(tmp_path / "deep.png"))
    assert out[0, 0, 0] == 0 and out[0, 3, 0] == 255


@pytest.mark.parametrize("arr", [
    np.zeros((5, 7, 3), np.uint8), np.ones((5, 7), np.float32), np.zeros((3, 5, 7), np.float64),
    np.zeros((5, 7, 4), np.uint16),
])
def test_arrays(arr):
    assert load_image(arr).size == (7, 5)


def test_transform_shape_and_normalisation():
    x = image_transform(Image.new("RGB", (30, 10), (255, 255, 255)), 16, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert x.shape == (3, 16, 16)
    torch.testing.assert_close(x, torch.ones(3, 16, 16))


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.png", "missing.png: no such file"),
    (lambda p: (p / "notes.png").write_text("hello") and p / "notes.png", "notes.png: not a readable image"),
    (lambda p: (p / "empty.png").write_bytes(b"") or p / "empty.png", "empty.png: the file is empty"),
    (lambda p: p, "is a directory"),
])
def test_bad_files_name_the_file(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        load_image(make(tmp_path))


def test_truncated_png_is_an_input_error():
    data = _png(Image.new("RGB", (64, 64), "blue"))
    with pytest.raises(InputError, match="not a readable image"):
        load_image(data[: len(data) // 2])


def test_other_types_are_rejected():
    with pytest.raises(InputError, match="expected an image"):
        load_image(3.5)
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((2, 2, 2, 2), np.uint8))
