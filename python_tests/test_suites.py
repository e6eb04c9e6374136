"""Experiment suites: config loading/validation, a mini suite end to end (artefacts, resume)."""

import json

import pytest

from eirnn_fast.runstore import RunFolderConflict
from eirnn_fast.suites import load_suite, run_suite, suite_dirs


def test_shipped_suites_load_with_the_seeds_names():
    suites = suite_dirs()
    assert {"phase2", "phase2c", "priorities"} <= set(suites)
    _, phase2 = load_suite("phase2")
    assert len(phase2) == 17 and "baseline" in phase2 and "learnable_alpha_neuron" in phase2
    assert phase2["low_rank_50"]["fit"]["low_rank"] == 50 and phase2["low_rank_50"]["fit"]["ltrial_weight"] == 0.5
    _, phase2c = load_suite("phase2c")
    assert len(phase2c) == 18 and "learnable_tau_pop_fixed_v2" in phase2c and "embed_28_learnable" in phase2c
    # the seed-001 configs that were missing
    assert phase2c["embed_28_random"]["fit"]["input_embed_type"] == "random"
    assert phase2c["embed_56_random"]["fit"]["input_embed_dim"] == 56
    assert phase2c["embed_polynomial"]["fit"]["input_embed_type"] == "polynomial"
    assert phase2c["alpha_neuron_low_lr"]["fit"]["alpha_lr_scale"] == 0.1
    for name in ("phase2", "phase2c", "priorities"):  # each base names its protocol
        assert {e["fit"]["protocol"] for e in load_suite(name)[1].values()} == {"ours"}


@pytest.mark.parametrize("suite", ["phase2", "phase2c"])
def test_under_the_predecessor_protocol_only_the_experiment_keys_differ_from_its_preset(suite):
    from eirnn_fast.train import FitConfig

    _, experiments = load_suite(suite, protocol="predecessor")
    for name, exp in experiments.items():
        cfg = FitConfig.from_dict(exp["fit"])
        assert cfg.protocol == "predecessor" and cfg.batch_size == 0 and cfg.unit_pairing == "position"
        assert set(cfg.protocol_overrides()) <= set(exp["override"]), name
    # under ours the suite keeps the seeds' lambdas in the seeds' forms
    _, ours = load_suite(suite)
    cfg = FitConfig.from_dict(ours["noise_0.05" if suite == "phase2c" else "baseline"]["fit"])
    assert (cfg.protocol, cfg.batch_size, cfg.reg_form, cfg.activity_form, cfg.ramp_epochs) == (
        "ours",
        64,
        "mean",
        "predecessor",
        0,
    )
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_suite(suite, protocol="theirs")


def _mini_suite(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "_base.toml").write_text('description = "base"\n[fit]\nmax_trials = 120\nepochs = 3\nplots = false\n')
    (folder / "baseline.toml").write_text('description = "reference"\n[fit]\n')
    (folder / "alpha_neuron.toml").write_text('description = "alpha"\n[fit]\nlearnable_alpha = "neuron"\n')
    return folder


def test_mini_suite_writes_summary_and_resumes(tmp_path):
    folder = _mini_suite(tmp_path)
    out = tmp_path / "out"
    summary = run_suite(str(folder), str(out), workers=1, progress=False)
    assert not summary["failures"]
    assert {r["experiment"] for r in summary["rows"]} == {"baseline", "alpha_neuron"}
    for name in ("summary.json", "summary.md", "comparison.png", "suite.json"):
        assert (out / name).is_file(), name
    table = (out / "summary.md").read_text()
    assert "| Rank | Experiment | Best Val Corr | vs Baseline | Epochs |" in table and "**baseline**" in table
    assert "| Test / Ceiling | Rate Err (median) | Off > 2x |" in table
    row = summary["rows"][0]
    res = json.loads((out / row["experiment"] / "seed_42" / "result.json").read_text())
    assert row["rate_error_median"] == pytest.approx(res["test_rate_error_median"])
    assert row["frac_off_2x"] == pytest.approx(res["test_frac_off_2x"])
    assert row["test_over_ceiling"] == pytest.approx(res["test_psth_corr"] / res["noise_ceiling"])
    result = out / "alpha_neuron" / "seed_42" / "result.json"
    stamp = result.stat().st_mtime_ns
    run_suite(str(folder), str(out), workers=1, progress=False)  # finished runs are skipped
    assert result.stat().st_mtime_ns == stamp
    assert json.loads((out / "summary.json").read_text())["rows"][0]["n_seeds"] == 1


def test_mini_suite_under_another_protocol_refuses_then_reruns_with_force(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "_base.toml").write_text('[fit]\nprotocol = "ours"\nmax_trials = 60\nepochs = 2\nplots = false\n')
    (folder / "baseline.toml").write_text("[fit]\n")
    out = tmp_path / "out"
    run_suite(str(folder), str(out), workers=1, progress=False)
    result = out / "baseline" / "seed_42" / "result.json"
    stamp = result.stat().st_mtime_ns
    with pytest.raises(RunFolderConflict, match="protocol: 'ours' -> 'predecessor'"):  # the suite folder's
        run_suite(str(folder), str(out), workers=1, progress=False, protocol="predecessor")
    assert result.stat().st_mtime_ns == stamp
    summary = run_suite(str(folder), str(out), workers=1, progress=False, protocol="predecessor", force=True)
    assert result.stat().st_mtime_ns != stamp  # the result of the other protocol was not reused
    assert json.loads(result.read_text())["protocol"] == "predecessor" and summary["protocol"] == "predecessor"
    assert "Protocol: predecessor" in (out / "summary.md").read_text()
    assert json.loads((out / "suite.json").read_text())["protocol"] == "predecessor"


def test_summary_table_of_results_without_the_rate_error():
    from eirnn_fast.suites import summary_markdown

    row = dict(
        rank=1, experiment="baseline", best_val_corr=0.3, vs_baseline=None, epochs=10, override={}, n_seeds=2,
        test_corr=0.25, test_corr_std=0.01, noise_ceiling=0.35, test_over_ceiling=0.714,
        rate_error_median=float("nan"), frac_off_2x=float("nan"),
    )  # fmt: skip
    line = summary_markdown({"rows": [row], "seeds": 2, "metric": "m"}).splitlines()[2]
    assert line.endswith("| 0.2500 +- 0.0100 | 0.3500 | 0.714 | - | - |")
    row.update(rate_error_median=0.0912, frac_off_2x=0.0244)
    line = summary_markdown({"rows": [row], "seeds": 2, "metric": "m"}).splitlines()[2]
    assert line.endswith("| 0.714 | 0.091 | 2 % |")


def test_session_option_reaches_every_run(tmp_path):
    from eirnn_fast.suites import _jobs

    exps = {"baseline": {"fit": {"epochs": 2}}}
    jobs = _jobs(exps, tmp_path, 1, None, None, False, 1, session="08_14")
    assert jobs[0]["fit"]["session"] == "08_14"
    jobs = _jobs({"b": {"fit": {"session": "08_14"}}}, tmp_path, 1, "x.mat", None, False, 1)
    assert jobs[0]["fit"]["data"] == "x.mat" and "session" not in jobs[0]["fit"]


def test_bad_suite_configs_raise(tmp_path):
    folder = _mini_suite(tmp_path)
    (folder / "broken.toml").write_text("[fit]\nnot_a_field = 1\n")
    with pytest.raises(ValueError, match=r"broken.toml: unknown config key 'not_a_field'"):
        load_suite(str(folder))
    (folder / "broken.toml").write_text("[fit]\nepocs = 1\n")
    with pytest.raises(ValueError, match=r"broken.toml: unknown config key 'epocs' \(did you mean 'epochs'\?\)"):
        load_suite(str(folder))
    with pytest.raises(ValueError, match="unknown suite"):
        load_suite("no_such_suite")
    with pytest.raises(ValueError, match="engine"):
        run_suite(str(folder), str(tmp_path / "o"), engine="slurm")


def test_suite_name_is_not_shadowed_by_a_results_folder(tmp_path, monkeypatch):
    # `eirnn-fast experiment phase2 --out phase2` leaves ./phase2/ (results, no configs) behind:
    # the next `eirnn-fast experiment phase2` from that folder must still find the shipped suite.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "phase2").mkdir()
    (tmp_path / "phase2" / "summary.json").write_text("{}")
    folder, configs = load_suite("phase2")
    assert folder == suite_dirs()["phase2"] and len(configs) == 17
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .toml configs"):
        load_suite("empty")


def _fake_run(out, name, test_r, vals, val_losses, rate_ratio=1.0, seed=42):
    run = out / name / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "result.json").write_text(
        json.dumps({"test_psth_corr": test_r, "noise_ceiling": 0.36, "test": {"mean_rate_ratio": rate_ratio}})
    )
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"epoch": i, "train_l_neuron": 0.5, "val_psth_corr": v, "val_l_neuron": l}) + "\n"
            for i, (v, l) in enumerate(zip(vals, val_losses))
        )
    )


def test_priorities_checks_apply_seed_002_criteria(tmp_path):
    from eirnn_fast.suites import PRIORITY_TESTS, check_priorities

    assert PRIORITY_TESTS <= {p.stem for p in suite_dirs()["priorities"].glob("*.toml")}
    _fake_run(tmp_path, "test2_quick", 0.2, [0.0, 0.1, 0.2], [0.9, 0.8, 0.7], rate_ratio=1.5)
    _fake_run(tmp_path, "test3_full", 0.31, [0.0] + [0.3] * 19, [0.9] * 10 + [1.2] * 10)  # val loss rose
    _fake_run(tmp_path, "test4_bypass_dale", 0.35, [0.1], [0.5])
    checks = check_priorities(tmp_path)
    assert checks["test2_quick"]["pass"] is True
    c3 = checks["test3_full"]
    assert c3["criteria"]["test r > 0.3"] and c3["criteria"]["validation curve shows learning"]
    assert not c3["criteria"]["validation L_neuron decreasing or stable"] and c3["pass"] is False
    c4 = checks["test4_bypass_dale"]
    assert c4["pass"] is True and c4["needed"] is True  # test 3 failed: the sanity run is needed
    t1 = checks["test1_diagnose"]
    ratios = t1["per_model_seed"]
    assert sorted(ratios) == [0, 1, 2, 3, 4] and len(set(ratios.values())) == 5  # five different models
    assert t1["input_modulation_ratio"] == sorted(ratios.values())[2] and t1["w_in_init"] == "uniform"
    assert t1["pass"] == (sorted(ratios.values())[2] > 0.5) and t1["seeds_above_50%"] == sum(
        r > 0.5 for r in ratios.values()
    )
    assert json.loads((tmp_path / "priorities_checks.json").read_text())["test3_full"]["pass"] is False


def test_mini_suite_process_pool_two_workers(tmp_path):
    folder = _mini_suite(tmp_path)
    summary = run_suite(str(folder), str(tmp_path / "pool"), workers=2, seeds=2, progress=False)
    assert not summary["failures"] and {r["n_seeds"] for r in summary["rows"]} == {2}


@pytest.mark.skipif(
    __import__("os").environ.get("EIRNN_FAST_SLOW") != "1",
    reason="starts a local Ray instance (~10 s): set EIRNN_FAST_SLOW=1 (needs pip install '.[ray]')",
)
def test_mini_suite_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    folder = _mini_suite(tmp_path)
    try:
        summary = run_suite(str(folder), str(tmp_path / "ray"), engine="ray", seeds=2, progress=False)
    finally:
        ray.shutdown()
    assert not summary["failures"] and {r["n_seeds"] for r in summary["rows"]} == {2}
    assert (tmp_path / "ray" / "baseline" / "seed_43" / "result.json").is_file()
