"""The service's defences, in process: reduced decoding of large uploads, the default pixel limit, the memory
estimate, RFC 6266 names, the token and loopback rules of `serve`, per-app metrics registries and the documented
flags. The over-the-wire abuse is tests/embed/service/test_abuse.py."""
from pathlib import Path

import httpx
import numpy as np
import pytest

from augpaint_fast.embed.api import from_pretrained
from augpaint_fast.cli.main import main
from augpaint_fast.data.imageio import decode_image, decode_label, read_image
from augpaint_fast.errors import AugPaintError
from augpaint_fast.embed.service.app import Limits, attachment, create_app, estimated_bytes
from augpaint_fast.embed.service.command import is_loopback, read_token

from ._http import TIMEOUT, ThreadServer, encoded


def test_a_large_upload_is_reduced_while_decoding_and_a_small_one_is_decoded_as_the_job_reads_it(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (600, 1030), np.uint8)
    assert decode_image(encoded(big), min_side=128).shape == (3, 150, 258)  # factor 600 // 128 = 4
    jpeg = encoded(np.stack([big] * 3, -1)[:, :1024], "JPEG", quality=90)
    assert decode_image(jpeg, min_side=64).shape == (3, 75, 128)  # factor 8 from Image.draft, no reduce left
    label = np.zeros((600, 1030), np.uint8)
    label[100:300, 200:500] = 2
    small = decode_label(encoded(label), size=(150, 258))
    assert small.shape == (150, 258) and set(np.unique(small)) == {0, 2}  # nearest: no blended class values
    little = rng.integers(0, 256, (200, 255), np.uint8)  # short side < 2 x 128: not reduced, read as the job does
    (tmp_path / "x.png").write_bytes(encoded(little))
    assert np.array_equal(decode_image(encoded(little), min_side=128), read_image(tmp_path / "x.png"))


def test_the_memory_estimate_counts_the_decoded_pixels_not_the_upload():
    grey = estimated_bytes((4096, 4096, "L"), (4096, 4096, "L"), 64)
    palette = estimated_bytes((4096, 4096, "P"), (4096, 4096, "L"), 64)
    assert 2 * 4096 ** 2 <= grey < 40 << 20 and palette > grey + 4 * 4096 ** 2 - 1
    assert estimated_bytes((64, 64, "L"), (64, 64, "L"), 64) < 1 << 20


def test_attachment_is_rfc_6266():
    assert attachment("case-1.zip") == "attachment; filename=\"case-1.zip\"; filename*=UTF-8''case-1.zip"
    assert attachment('名"x.zip') == "attachment; filename=\"__x.zip\"; filename*=UTF-8''%E5%90%8D%22x.zip"


def test_token_and_loopback_rules(tmp_path):
    assert read_token(None, {}) is None
    assert read_token(None, {"AUGPAINT_FAST_TOKEN": " s3cret-s3cret-s3cret\n"}) == "s3cret-s3cret-s3cret"
    (tmp_path / "t").write_text("from-the-file-0123456789\n")
    assert read_token(tmp_path / "t", {"AUGPAINT_FAST_TOKEN": "from-the-env-0123456789"}) == "from-the-file-0123456789"
    for bad in ("", "short", "has a space in it 0123", "ünïcode-token-0123456789"):
        with pytest.raises(AugPaintError, match="at least 16 printable ASCII"):
            read_token(None, {"AUGPAINT_FAST_TOKEN": bad})
    with pytest.raises(AugPaintError, match="cannot read --token-file"):
        read_token(tmp_path / "missing", {})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not any(map(is_loopback, ("0.0.0.0", "::", "10.0.0.5", "example.org")))


def test_serve_help_documents_the_token_timeouts_and_memory_budget(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("AUGPAINT_FAST_TOKEN", "--token-file", "--insecure", "--no-docs", "--header-timeout",
                  "--request-timeout", "--memory-budget-mb", "--max-pixels", "Authorization: Bearer"):
        assert words in text, words


@pytest.fixture(scope="module")
def aug(weights):
    with from_pretrained(weights, steps=2, batch_size=2) as a:
        yield a


def test_by_default_an_upload_over_8x_the_models_pixels_is_413_from_its_header(aug, phantom_data):
    app = create_app(aug)
    big = encoded(np.full((4096, 4096), 7, np.uint8))
    label = (Path(phantom_data) / "labels" / "phantom_0000.png").read_bytes()
    with ThreadServer(app) as srv:
        r = httpx.post(f"{srv.url}/augment", files={"image": ("b.png", big), "label": ("l.png", label)},
                       timeout=TIMEOUT)
        assert r.status_code == 413 and "more than the limit of 32768" in r.json()["detail"], r.text
        text = httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT).text
        assert 'augpaint_refusals_total{reason="too_many_pixels"} 1.0' in text
        assert httpx.get(f"{srv.url}/docs", timeout=TIMEOUT).status_code == 200  # no token: docs on
    other = create_app(aug, Limits(), token="another-app-token-0123", docs=True)  # own registry: no clash
    with ThreadServer(other) as srv:
        assert httpx.get(f"{srv.url}/docs", timeout=TIMEOUT).status_code == 200  # docs=True and public
        assert httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT).status_code == 401
        text = httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT,
                         headers={"Authorization": "Bearer another-app-token-0123"}).text
        assert "too_many_pixels" not in text and 'augpaint_refusals_total{reason="unauthorized"} 1.0' in text
