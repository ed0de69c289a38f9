"""The sample command's speed flags (engines.cli_options) end up as engine options, and bad values are one line."""
import json

from augpaint_fast.cli.main import _engine_options, _parser, main


def _opts(*flags):
    return _engine_options(_parser().parse_args(["sample", "--data", "d", "--out", "o", *flags]))


def test_flags_become_engine_options_only_when_given():
    assert _opts() == {}
    assert _opts("--cache-interval", "3", "--fused-norm", "off", "--flash-attention", "on", "--dtype",
                 "bfloat16") == {"cache_interval": 3, "fused_norm": False, "flash_attention": True,
                                 "dtype": "bfloat16"}


def test_sample_with_cache_interval_records_it(phantom_data, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sample", "--data", str(phantom_data), "--out", str(out), "--n", "1", "--steps", "4",
                 "--cache-interval", "2", "--fused-norm", "on"]) == 0
    rec = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert rec["engine_options"] == {"cache_interval": 2, "fused_norm": True}
    capsys.readouterr()
    assert main(["sample", "--data", str(phantom_data), "--out", str(tmp_path / "bad"), "--cache-interval",
                 "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["augpaint-fast: error: --cache-interval must be an integer >= 1 (1 = no caching), got 0"]


def test_info_names_the_group_norm_kernel(capsys):
    assert main(["info"]) == 0
    assert "fused GroupNorm+SiLU kernel path:" in capsys.readouterr().out
