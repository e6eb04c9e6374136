"""Issue 18: every `eirnn-fast fit` value is checked before any data loads (status 2, one line naming
the field); table-driven over FitConfig's ranges and the model's choices."""

import pytest

from eirnn_fast.cli import main

# (flag, bad value, field named in the message); each must fail before the data loads
BAD_FIT_VALUES = [
    ("--lr", "-1", "lr must be > 0"),
    ("--lr", "0", "lr must be > 0"),
    ("--lr", "nan", "lr must be > 0"),
    ("--epochs", "-1", "epochs must be >= 1"),
    ("--epochs", "0", "epochs must be >= 1"),
    ("--batch-size", "-2", "batch_size must be >= 0"),
    ("--val-fraction", "-0.2", "val_fraction must be in [0, 1)"),
    ("--val-fraction", "1.5", "val_fraction must be in [0, 1)"),
    ("--test-fraction", "-0.1", "test_fraction must be in [0, 1)"),
    ("--test-fraction", "0.9", "val_fraction + test_fraction must be < 1"),
    ("--patience", "-1", "patience must be >= 0"),
    ("--plateau-patience", "-3", "plateau_patience must be >= 0"),
    ("--warmup-epochs", "-1", "warmup_epochs must be >= 0"),
    ("--ltrial-weight", "-0.5", "ltrial_weight must be >= 0"),
    ("--lneuron-weight", "-1", "lneuron_weight must be >= 0"),
    ("--reg-weight", "-1e-4", "reg_weight must be >= 0"),
    ("--activity-weight", "-1", "activity_weight must be >= 0"),
    ("--noise-scale", "-0.1", "noise_scale must be >= 0"),
    ("--grad-clip", "-1", "grad_clip must be >= 0"),
    ("--alpha-init", "0", "alpha_init must be > 0"),
    ("--alpha-init", "1.5", "alpha_init and plateau_factor must be < 1"),
    ("--plateau-factor", "0", "plateau_factor must be > 0"),
    ("--clip-percentile", "150", "clip_percentile must be in (0, 100]"),
    ("--max-trials", "0", "max_trials must be >= 1"),
    ("--threads", "0", "threads must be >= 1"),
    ("--learnable-alpha", "bogus", "learnable_alpha must be one of"),
    ("--learnable-tau", "bogus", "learnable_tau must be one of"),
    ("--input-embed-type", "bogus", "input_embed_type must be one of"),
    ("--backend", "gpu", "backend must be one of"),
]


@pytest.mark.parametrize("flag, value, message", BAD_FIT_VALUES)
def test_fit_rejects_bad_values_before_the_data_loads(flag, value, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EIRNN_FAST_DEBUG", raising=False)
    # an absent --data file: had the value passed, the error would be about the file, not the value
    rc = main(["fit", f"{flag}={value}", "--data", str(tmp_path / "absent.mat"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("eirnn-fast fit: error: ") and message in err[0], err
    assert "absent.mat" not in err[0] and "WARNING" not in err[0]
    assert not (tmp_path / "run").exists()


def test_bool_flags_help_names_the_default_flag(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "(default: True)" not in out and "(default: False)" not in out
    assert "default: --enforce-ratio" in " ".join(out.split())


def test_diagnose_writes_no_json_unasked(tmp_path, monkeypatch, capsys):
    from eirnn_fast.data import make_synthetic_session

    path = tmp_path / "tiny.mat"
    make_synthetic_session(path, seed=4, fmt="v5", n_trials=30, n_time_bins=20, n_exc=4, n_inh=2)
    monkeypatch.chdir(tmp_path)
    assert main(["diagnose", "--data", str(path), "--n-trials", "2"]) == 0
    assert not (tmp_path / "diagnose.json").exists()
