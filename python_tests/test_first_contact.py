"""Issue 18, first contact: what the help says, what a suite prints once, what its plot draws."""

import logging
from pathlib import Path

import pytest

from eirnn_fast.cli import main
from eirnn_fast.suites import comparison_plot, run_suite

ROOT = Path(__file__).resolve().parent.parent


def test_experiment_suite_help_describes_the_suite(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "priorities", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "suite priorities" in out and "test3_full" in out and "Test 3: 500 epochs" in out


def test_experiment_help_lists_the_shipped_suites(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "shipped suites: phase2, phase2c, priorities" in capsys.readouterr().out


def test_flyvis_generate_help_shows_defaults_and_size(capsys):
    with pytest.raises(SystemExit):
        main(["flyvis", "generate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 8)" in out and "(default: 64000)" in out and "~7.5 GB" in out


def test_an_example_gnn_yaml_is_shipped_and_documented():
    example = ROOT / "experiments" / "flyvis_recovery" / "gnn.yaml"
    assert example.is_file()
    readme = (ROOT / "README.md").read_text()
    assert "experiments/flyvis_recovery/gnn.yaml" in readme
    assert "relative to the YAML file's folder" in readme


def _mini_suite(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "_base.toml").write_text('description = "base"\n[fit]\nmax_trials = 60\nepochs = 1\nplots = false\n')
    (folder / "baseline.toml").write_text('description = "reference"\n[fit]\n')
    (folder / "other.toml").write_text('description = "other"\n[fit]\nlr = 0.02\n')
    return folder


def test_data_quirk_notes_print_once_per_suite(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="eirnn_fast.data.session")
    level = logging.getLogger("eirnn_fast.data.session").level
    run_suite(str(_mini_suite(tmp_path)), str(tmp_path / "out"), workers=1, seeds=2, progress=False)
    notes = [r.getMessage() for r in caplog.records if "input_eye_y is all zero" in r.getMessage()]
    assert len(notes) == 1, notes  # 4 runs, one note (it was one per run)
    assert logging.getLogger("eirnn_fast.data.session").level == level  # restored after the runs


def _bars(monkeypatch, summary, tmp_path):
    import matplotlib.axes

    calls = []
    real = matplotlib.axes.Axes.bar

    def bar(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    comparison_plot(summary, tmp_path / "c.png")
    assert (tmp_path / "c.png").is_file()
    return calls[0]


def _summary(seeds, std):
    rows = [
        {"experiment": n, "test_corr": 0.3, "test_corr_std": std, "noise_ceiling": 0.6, "n_seeds": seeds}
        for n in ("baseline", "b")
    ]
    return {"rows": rows, "seeds": seeds}


def test_one_seed_suite_draws_no_error_bars(monkeypatch, tmp_path):
    assert _bars(monkeypatch, _summary(1, 0.0), tmp_path)["yerr"] is None


def test_several_seeds_draw_their_spread(monkeypatch, tmp_path):
    assert list(_bars(monkeypatch, _summary(3, 0.05), tmp_path)["yerr"]) == [0.05, 0.05]
