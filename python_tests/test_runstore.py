import pytest

from eirnn_fast.runstore import RunFolderConflict, checkpoint_format, config_diff, decide, load_json, trim_jsonl


def test_config_diff_legacy_and_free_keys():
    old = {"lr": 0.01, "epochs": 10}
    new = {"lr": 0.01, "epochs": 20, "noise": 0.0}
    assert config_diff(old, new, free_keys=["epochs"]) == {"noise": ("<missing>", 0.0)}
    assert config_diff(old, new, legacy_defaults={"noise": 0.0}, free_keys=["epochs"]) == {}


def test_decide_rule(tmp_path):
    cfg = {"lr": 0.01, "seed": 0}
    assert decide(tmp_path, cfg, None).action == "fresh"
    assert decide(tmp_path, cfg, dict(cfg)).action == "resume"
    d = decide(tmp_path, cfg, dict(cfg), finished=True)
    assert d.action == "finished" and d.message == f"already finished, loaded from {tmp_path}"
    with pytest.raises(RunFolderConflict, match=r"lr: 0.01 -> 0.005.*seed: 0 -> 1"):
        decide(tmp_path, {"lr": 0.005, "seed": 1}, cfg, finished=True)
    (tmp_path / "evaluation.json").write_text("{}")
    (tmp_path / "keep.txt").write_text("x")
    d = decide(tmp_path, {"lr": 0.005, "seed": 1}, cfg, force=True, stale_outputs=["evaluation.json", "psth_eval.png"])
    assert d.action == "fresh"
    assert not (tmp_path / "evaluation.json").exists() and (tmp_path / "keep.txt").exists()


def test_checkpoint_format():
    assert checkpoint_format({"format": "eirnn_fast.fit/1"}) == "eirnn_fast.fit/1"
    assert checkpoint_format({"model": {}}) == "eirnn_fast.flyvis/0"
    with pytest.raises(ValueError, match="format"):
        checkpoint_format({"format": 3})


def test_trim_jsonl_drops_lines_after_the_checkpoint_and_a_cut_off_line(tmp_path):
    log = tmp_path / "history.jsonl"
    log.write_text('{"epoch": 0, "iteration": 5}\n{"epoch": 0, "iteration": 10}\n{"epoch": 1, "itera')
    trim_jsonl(log, lambda r: (r["epoch"], r["iteration"]) <= (0, 5))
    assert log.read_text() == '{"epoch": 0, "iteration": 5}\n'
    trim_jsonl(tmp_path / "absent.jsonl", lambda r: True)  # no file: nothing to do
    assert not (tmp_path / "absent.jsonl").exists()


def test_load_json(tmp_path):
    assert load_json(tmp_path / "none.json") is None
    (tmp_path / "cut.json").write_text('{"lr": 0.0')
    with pytest.raises(ValueError, match="cut.json is unreadable.*--force"):
        load_json(tmp_path / "cut.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="does not hold a JSON object"):
        load_json(tmp_path / "list.json")
