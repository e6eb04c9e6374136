"""`eirnn-fast` CLI: fit/diagnose/evaluate on tiny data, one-line errors with exit status 2."""

import json

import pytest

from eirnn_fast.cli import main
from eirnn_fast.data import make_synthetic_session


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.mat"
    make_synthetic_session(path, seed=4, fmt="v5", n_trials=30, n_time_bins=20, n_exc=4, n_inh=2)
    return str(path)


def test_fit_then_evaluate(tiny_file, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"epochs": 5, "batch_size": 8, "plots": False}))
    rc = main(
        [
            "fit",
            "--data",
            tiny_file,
            "--config",
            str(cfg),
            "--epochs",
            "2",
            "--out",
            str(out),
            "--quiet",
            "--seed",
            "1",
            "--learnable-alpha",
            "population",
            "--clip-percentile",
            "none",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "test PSTH correlation:" in text and "noise ceiling" in text and "epochs run: 2" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["batch_size"] == 8 and saved["learnable_alpha"] == "population"
    assert saved["clip_percentile"] is None and saved["seed"] == 1
    assert "per-neuron rate error: median |log((model + 0.5) / (data + 0.5))|" in text
    assert "neurons off by > 2x" in text and "test PSTH r / noise ceiling:" in text
    assert main(["evaluate", str(out), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "PSTH correlation:" in text and "per-neuron rate error: median" in text
    assert (out / "evaluation.json").is_file()


def test_fit_an_embedded_session_by_name(tmp_path, capsys):
    out = tmp_path / "s14"
    argv = ["fit", "--session", "08_14", "--max-trials", "40", "--epochs", "1", "--out", str(out), "--no-plots"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "embedded rnn_export_Newton_08_14_2025_SC.mat" in text and "41 neurons: 25 E + 16 I" in text
    assert json.loads((out / "config.json").read_text())["session"] == "08_14"
    assert main(["fit", "--session", "08_15", "--out", str(tmp_path / "x")]) == 2
    assert "session must be one of" in capsys.readouterr().err


def test_fit_under_the_predecessor_protocol(tiny_file, tmp_path, capsys):
    out = tmp_path / "pred"
    argv = ["fit", "--protocol", "predecessor", "--data", tiny_file, "--epochs", "2", "--out", str(out), "--quiet"]
    assert main(argv + ["--no-eval-noise", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "protocol: predecessor (changed from its preset: eval_noise=False, epochs=2)" in text
    assert "test trials held out first (15 %, stratified by reward)" in text and "80/20 train/val" in text
    assert "units paired by position" in text
    saved = json.loads((out / "config.json").read_text())
    assert (saved["protocol"], saved["batch_size"], saved["reg_form"], saved["eval_noise"]) == (
        "predecessor",
        0,
        "mean",
        False,
    )
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["steps"] for x in lines] == [1, 1]


def test_diagnose(tiny_file, tmp_path, capsys):
    js = tmp_path / "d.json"
    assert main(["diagnose", "--data", tiny_file, "--json", str(js), "--n-trials", "3"]) == 0
    text = capsys.readouterr().out
    assert "DATA STATISTICS" in text and "W_rec spectral radius" in text and "Channel 13" in text
    assert json.loads(js.read_text())["data"]["shape"] == [30, 20, 6]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--data", "{tmp}/absent.mat"], "absent.mat: no such file"),
        (["fit", "--data", "{tmp}/garbage.mat"], "not a MAT file"),
        (["fit", "--data", "{tmp}/partial.mat"], "missing required variable(s) firing_rates"),
        (["fit", "--config", "{tmp}/bad.toml"], "bad.toml: not valid TOML (line 1"),
        (["fit", "--epochs", "many"], "invalid int value"),
        (["fit", "--scheduler", "step", "--data", "{tmp}/absent.mat"], "scheduler must be one of"),
        (["fit", "--protocol", "theirs", "--data", "{tmp}/absent.mat"], "protocol must be one of"),
        (["fit", "--protocol", "predecessor", "--reg-form", "cube"], "reg_form must be one of"),
        (["fit", "--loss-ema-init", "0"], "loss_ema_init must be None or > 0"),
        (["experiment", "phase2", "--protocol", "theirs", "--quick"], "protocol must be one of"),
        (["diagnose", "--data", "{tmp}/garbage.mat"], "not a MAT file"),
        (["evaluate", "{tmp}"], "no checkpoint.pt"),
    ],
)
def test_errors_are_one_line_with_status_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # the default output folder runs/ is relative to the working directory
    (tmp_path / "garbage.mat").write_bytes(b"\x00\x01 not a mat file " * 20)
    from eirnn_fast.data import write_mat

    write_mat(tmp_path / "partial.mat", {"n_trials": 3.0}, fmt="v7.3")
    (tmp_path / "bad.toml").write_text("epochs = = 3\n")
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_interrupt_message_names_what_resumes(monkeypatch, capsys, tmp_path):
    import eirnn_fast.cli as cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.yaml").write_text("name: x\n")  # the config must exist: checked before the command runs

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():  # every command -> Ctrl-C
        sub.set_defaults(func=interrupted)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for argv, expect in ((["explore", "x.yaml"], "finished nodes are kept"), (["fit"], "the fit resumes")):
        assert cli.main(argv) == 130
        assert expect in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, prog, what, usage",
    [
        (["fit", "--epochs", "x"], "eirnn-fast fit", "argument --epochs: invalid int value: 'x'", True),
        (["fit", "--bogus", "1"], "eirnn-fast fit", "unrecognized arguments: --bogus 1", True),
        (["flyvis", "train", "c.yaml", "--nope"], "eirnn-fast flyvis train", "unrecognized arguments: --nope", True),
        (
            ["flyvis", "train", "/no/such.yaml"],
            "eirnn-fast flyvis train",
            "/no/such.yaml: no such file",
            True,
        ),
        (["flyvis", "evaluate", "."], "eirnn-fast flyvis evaluate", "is not a run folder", False),
        (["fit", "--session", "08_15"], "eirnn-fast fit", "session must be one of", False),
        (["nosuch"], "eirnn-fast", "argument command: invalid choice: 'nosuch'", True),
    ],
)
def test_every_error_has_one_format(argv, prog, what, usage, capsys, tmp_path, monkeypatch):
    """One line `eirnn-fast <command>: error: <what>` (argument errors point to --help), status 2, no errno."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EIRNN_FAST_DEBUG", raising=False)
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: ") and what in lines[0], lines
    assert "[Errno" not in lines[0] and lines[0].endswith(f"(usage: {prog} --help)") == usage, lines


def test_debug_env_shows_the_traceback(monkeypatch, tmp_path):
    from eirnn_fast.cli import CLIError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EIRNN_FAST_DEBUG", "1")
    with pytest.raises(CLIError, match="no such file"):
        main(["flyvis", "train", "/no/such.yaml"])
