"""Recovery on the shipped ground truth (flyvis flow/0000/000) with the package defaults: the case the
old test_pearson got wrong (extent 1, process noise 0.5: a model with connectivity ~0.96 read 0.07)."""

import json

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import metrics as M
from eirnn_fast.flyvis.simulator import GenerateConfig, generate_dataset
from eirnn_fast.flyvis.train import FlyVisTrainConfig, load_training_data, train_flyvis_gnn


@pytest.fixture(scope="module")
def noisy_extent1(tmp_path_factory):
    out = tmp_path_factory.mktemp("fv_e1_noise05")
    generate_dataset(
        GenerateConfig(
            extent=1, n_frames=4000, n_test_frames=400, n_streams=4, noise_model_level=0.5, plots=False, progress=False
        ),
        0,
        out,
    )
    return load_training_data(out)


def test_noise_05_recovers_and_test_pearson_tells_the_truth(noisy_extent1):
    data = noisy_extent1
    cfg = FlyVisTrainConfig(iterations_per_epoch=1500, quiet=True)  # defaults: 2 epochs (NeuralGraph's loop)
    model, info = train_flyvis_gnn(cfg, data)
    assert info["iterations_run"] == 3000
    res = M.evaluate(model, data)
    assert res["connectivity_R2"] > 0.9 and res["tau_R2"] > 0.9
    assert res["test_pearson"] > 0.8  # against the noise-free truth from the first test frame
    assert res["test_pearson_recorded"] < res["test_pearson"] - 0.3  # the noisy record caps the old metric
    assert np.isfinite(res["V_rest_R2"]) and "notes" not in res


def test_ladder_case_is_resumable_and_summarised(tmp_path):
    from eirnn_fast.flyvis.ladder import Rung, load_ladder, run_case, summarise

    rung = Rung(
        extent=1,
        noise_model_level=0.5,
        n_frames=400,
        n_test_frames=100,
        n_streams=1,
        config={"iterations_per_epoch": 10, "hidden_dim": 8, "hidden_dim_update": 8},
    )
    case = run_case(rung, 3, tmp_path)
    folder = tmp_path / rung.name / "seed3"
    assert (folder / "case.json").exists() and not (folder / "data").exists()  # data removed after the run
    assert case["iterations"] == 20 and case["x_range"][0] < case["x_range"][1]
    assert 1 <= case["activity_svd_rank_reference"]["rank_99"] <= 100
    again = run_case(rung, 3, tmp_path)  # done: loaded, not rerun (NaN metrics compare as text)
    assert json.dumps(again, sort_keys=True, default=float) == json.dumps(case, sort_keys=True, default=float)
    # a case stopped mid-training and resumed reports the schedule's iterations, not only the rest it ran
    (folder / "case.json").unlink()
    ck = torch.load(folder / "run" / "checkpoint.pt", weights_only=False)
    assert (ck["epoch"], ck["iteration"]) == (2, 0)
    resumed = run_case(rung, 3, tmp_path)  # the finished checkpoint: nothing left to run
    assert resumed["iterations"] == 20 and resumed["iterations_this_process"] == 0
    table = summarise([case])
    assert rung.name in table and "Node 21" in table and "0.955 +- 0.029" in table
    (tmp_path / "bad.yaml").write_text("rungs:\n  - {extent: 1, noise: 0.05}\n")
    with pytest.raises(ValueError, match=r"unknown config key .rungs\[0\]\.noise."):
        load_ladder(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("rungs: []\n")
    with pytest.raises(ValueError, match="non-empty list 'rungs'"):
        load_ladder(tmp_path / "bad2.yaml")


def test_ladder_results_keep_the_prose_around_the_table(tmp_path):
    """`flyvis ladder --results` used to overwrite RESULTS.md with the bare table, prose and all."""
    from eirnn_fast.flyvis.ladder import RESULTS_BEGIN, RESULTS_END, write_results

    p = tmp_path / "RESULTS.md"
    write_results(p, "| t1 |")  # a new file: just the marked block
    assert p.read_text() == f"{RESULTS_BEGIN}\n| t1 |\n{RESULTS_END}\n"
    p.write_text(f"# head\nintro\n\n{RESULTS_BEGIN}\n| old |\n{RESULTS_END}\n\n## analysis\nkept\n")
    write_results(p, "| new |\n")
    assert p.read_text() == f"# head\nintro\n\n{RESULTS_BEGIN}\n| new |\n{RESULTS_END}\n\n## analysis\nkept\n"
    q = tmp_path / "plain.md"
    q.write_text("# notes without markers\n")
    write_results(q, "| t |")
    assert q.read_text() == f"# notes without markers\n\n{RESULTS_BEGIN}\n| t |\n{RESULTS_END}\n"


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("rung: []\n", ValueError, "unknown config key 'rung' (did you mean 'rungs'?)"),
        (
            "rungs:\n  - {extent: one, noise_model_level: 0.05, n_frames: 10}\n",
            TypeError,
            "'rungs[0].extent': must be int",
        ),
        ("rungs:\n  - {extent: 1, n_frames: 10}\n", ValueError, "rung 0: missing noise_model_level"),
        ("rungs:\n  - 3\n", TypeError, "config key 'rungs'"),
        ("rungs:\n  - {extent: 1, noise_model_level: 0.05, n_frames: 10}\nseeds: [0, x]\n", TypeError, "'seeds'"),
        ("rungs:\n  - {extent: 1, noise_model_level: 0.05, n_frames: 10}\nthreads: 1.5\n", TypeError, "'threads'"),
    ],
)
def test_ladder_yaml_is_read_by_the_config_mechanism(tmp_path, text, error, message):
    from eirnn_fast.flyvis.ladder import load_ladder

    (tmp_path / "l.yaml").write_text(text)
    with pytest.raises(error) as info:
        load_ladder(tmp_path / "l.yaml")
    assert message in str(info.value) and "l.yaml" in str(info.value)


def test_ladder_yaml_reads_yaml_floats_and_defaults(tmp_path):
    from eirnn_fast.flyvis.ladder import load_ladder

    (tmp_path / "l.yaml").write_text("rungs:\n  - {extent: 2, noise_model_level: 5e-2, n_frames: 100, seeds: [4]}\n")
    lad = load_ladder(tmp_path / "l.yaml")
    (rung,) = lad["rungs"]
    assert rung.noise_model_level == 0.05 and rung.seeds == [4] and rung.n_test_frames == 8000
    assert lad["seeds"] == [0, 1, 2] and lad["threads"] == 1 and lad["keep_data"] is False
