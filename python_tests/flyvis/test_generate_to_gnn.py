"""End to end across the FlyVis modules: `flyvis generate` folder -> GNN training data -> a few
training iterations through the CLI, with the ground truth carried along for the metrics."""

import json

import numpy as np

from eirnn_fast.cli import main
from eirnn_fast.flyvis.train import load_training_data


def test_generated_folder_feeds_the_gnn_trainer(tmp_path):
    data_dir = tmp_path / "data"
    assert (
        main(
            [
                "flyvis",
                "generate",
                "--out-dir",
                str(data_dir),
                "--extent",
                "1",
                "--n-frames",
                "80",
                "--n-test-frames",
                "40",
                "--n-streams",
                "2",
                "--chunk-frames",
                "40",
                "--quiet",
                "--no-plots",
            ]
        )
        == 0
    )
    data = load_training_data(data_dir)
    n = int(data["n_neurons"])
    assert data["x"].shape[1] == n and data["I"].shape == data["x"].shape and data["y"].shape == data["x"].shape
    assert data["W"].shape == data["src"].shape and data["tau"].shape == (n,)
    assert np.abs(data["I"]).sum() > 0  # the stimulus reaches the photoreceptors

    config = tmp_path / "gnn.yaml"
    config.write_text(
        f"data_path: {data_dir}\nn_epochs: 1\nbatch_size: 4\ndata_augmentation_loop: 1\n"
        "hidden_dim: 16\nn_layers: 2\nseed: 0\n"
    )
    run = tmp_path / "run"
    assert main(["flyvis", "train", str(config), "--out", str(run)]) == 0
    result = json.loads((run / "result.json").read_text())
    assert "connectivity_R2" in json.dumps(result)
